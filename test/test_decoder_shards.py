"""Sharded decoding (candidate blocks on their own threads) predicts exactly what one block predicts."""

from __future__ import annotations

import numpy as np
import pytest

from tdm_control.config import ConfigError
from tdm_control.dynamics.onnx_model import load_onnx_dynamics, resolve_shards
from tdm_control.history import History

SHIPPED = [("models/cartpole_swingup_tdm.onnx", "cartpole_swingup"),
           ("models/walker_stand_tdm_v3.onnx", "walker_stand")]


def _history(model, task, rng: np.random.Generator) -> tuple[History, np.ndarray]:
    history = History(model.history_steps)
    for _ in range(model.history_steps + 1):  # more steps than the window holds
        history.append(rng.normal(0, 0.3, task.observation_size), float(rng.uniform()),
                       rng.uniform(-1, 1, task.action_size))
    history.current_reward = 0.4
    return history, rng.normal(0, 0.3, task.observation_size)


@pytest.mark.parametrize("path,task_name", SHIPPED, ids=[t for _, t in SHIPPED])
def test_sharded_rollouts_and_proposals_equal_one_block_on_the_shipped_models(path, task_name, tasks):
    task = tasks[task_name]
    one, three = load_onnx_dynamics(path, task, shards=1), load_onnx_dynamics(path, task, shards=3)
    try:
        rng = np.random.default_rng(7)
        history, obs = _history(one, task, rng)
        actions = rng.uniform(-1, 1, (10, 12, task.action_size))  # 10 rows: blocks of 4, 3, 3
        expected, got = one.rollout(history, obs, actions), three.rollout(history, obs, actions)
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(a, b)
        noise = rng.normal(0, 0.2, (10, 6, task.action_size))
        for a, b in zip(one.rollout_with_proposals(history, obs, noise),
                        three.rollout_with_proposals(history, obs, noise)):
            np.testing.assert_array_equal(a, b)
        assert three.passes == one.passes  # each block makes the same sequential calls, side by side
        single = three.rollout(history, obs, actions[:1])  # fewer candidates than blocks
        np.testing.assert_array_equal(single[0], expected[0][:1])
    finally:
        one.close()
        three.close()


def test_shards_are_chosen_by_what_the_caller_runs_on():
    assert resolve_shards(3, 0, "cpu") == 3
    assert resolve_shards(0, 1, "cpu") == 1  # one thread asked for: grids run an episode per core
    assert resolve_shards(0, 0, "cuda") == 1
    assert 1 <= resolve_shards(0, 0, "cpu") <= 4
    with pytest.raises(ConfigError, match="shards must be >= 0"):
        resolve_shards(-1, 0, "cpu")
