"""evaluation/walker_planner_variants.py: its baseline is the shipped planner, and its variants run."""

import importlib.util
import os

import numpy as np
import pytest

from sim_bridge.simulator import Simulator
from tdm_control.evaluation import EvalConfig, build_controller, run_episode
from tdm_control.tasks import make_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 6  # 3 plans at action repeat 2


@pytest.fixture(scope="module")
def variants():
    spec = importlib.util.spec_from_file_location(
        "walker_planner_variants", os.path.join(ROOT, "evaluation", "walker_planner_variants.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shipped_rewards(seed: int) -> np.ndarray:
    """The rewards of the grid's episode for `seed` with the shipped proposal planner."""
    task = make_task("walker_stand")
    config = EvalConfig(task="walker_stand", model="models/walker_stand_tdm_v3.onnx", planner="proposal",
                        planner_params={"samples": 32, "horizon": 15, "noise_variance": 0.05}, seed=seed)
    controller = build_controller(config, task, 0)
    try:
        _, _, rewards = run_episode(Simulator(task, seed=seed), controller, STEPS)
    finally:
        controller.planner.dynamics.close()
    return rewards


def test_the_baseline_variant_plays_the_shipped_planners_episode(variants):
    result = variants.run_variant(("greedy", variants.VARIANTS["greedy"], 2, STEPS))
    np.testing.assert_allclose(result["rewards"], shipped_rewards(2), atol=1e-4)  # traces are rounded


@pytest.mark.parametrize("name", ["expected rewards", "sampled rollouts x2", "likelihood penalty"])
def test_variants_play_an_episode(variants, name):
    result = variants.run_variant((name, variants.VARIANTS[name], 2, STEPS))
    assert len(result["rewards"]) == STEPS
    assert np.isfinite(result["return"]) and 0.0 <= result["return"] <= STEPS
