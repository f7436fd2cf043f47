"""The plan audit replays plans truthfully and leaves the audited episode as eval plays it."""

import json

import numpy as np
import pytest

from tdm_control.controller import build_controller
from tdm_control.evaluation.audit import audit_episode, summarize_audit
from tdm_control.evaluation.episodes import EvalConfig, run_episode
from tdm_control.tasks.simulator import Simulator

TDM = "models/cartpole_swingup_tdm.onnx"


def test_audit_plays_the_eval_episode_and_scores_plans(tasks):
    config = EvalConfig(task="cartpole_swingup", model=TDM, planner="proposal",
                        planner_params={"samples": 8, "horizon": 5, "noise_variance": 0.1}, episodes=1, seed=3)
    result = audit_episode(config, steps=30, reference_samples=16, show_progress=False)
    controller = build_controller(config, tasks["cartpole_swingup"], 0)
    _, _, rewards = run_episode(Simulator(tasks["cartpole_swingup"], seed=3), controller, 30)
    # Replays and the reference planner leave the episode untouched: the same rewards as eval's.
    np.testing.assert_allclose(result["rewards"], np.round(rewards, 4))
    assert [p["step"] for p in result["plans"]] == list(range(0, 30, 2))  # the model plans every 2 steps
    for p in result["plans"]:
        assert 0.0 <= p["chosen_true"] <= 5.0 and 0.0 <= p["reference_true"] <= 5.0
        assert np.isfinite(p["chosen_predicted"]) and np.isfinite(p["reference_predicted"])
    assert result["summary"]["plans"] == 15


def test_the_ground_truth_keeps_its_promises():
    config = EvalConfig(task="cartpole_swingup", model="mujoco", planner="random_shooting",
                        planner_params={"samples": 16, "horizon": 10}, episodes=1, seed=0)
    result = audit_episode(config, steps=12, reference_samples=16, show_progress=False)
    for p in result["plans"]:  # a replay in the simulator is the exact model's prediction
        assert p["chosen_predicted"] == pytest.approx(p["chosen_true"], abs=1e-6)
        assert p["reference_predicted"] == pytest.approx(p["reference_true"], abs=1e-6)
    assert abs(result["summary"]["optimism"]) < 1e-6


def test_audit_summary_counts_misranked_plans():
    keys = ("chosen_predicted", "chosen_true", "reference_true", "reference_predicted")
    plans = [{"step": 2 * i, **dict(zip(keys, row))} for i, row in enumerate([
        (9.0, 4.0, 6.0, 3.0),  # overrates its choice, underrates a truly better plan
        (5.0, 5.0, 4.0, 2.0),  # its choice is the better one
        (15.0, 14.9, 15.0, 14.0),  # better by less than the margin: a tie, not a misranking
    ])]
    s = summarize_audit(plans)
    assert s["optimism"] == pytest.approx((5.0 + 0.0 + 0.1) / 3)
    assert s["reference_gain"] == pytest.approx((2.0 - 1.0 + 0.1) / 3)
    assert s["misranked_share"] == pytest.approx(1 / 3)


def test_audit_command_writes_table_json_and_plot(tmp_path, capsys):
    from tdm_control.cli import main

    out, plot = tmp_path / "audit.json", tmp_path / "audit.png"
    assert main(["audit", "--task", "cartpole_swingup", "--model", TDM, "--planner", "proposal", "--samples", "8",
                 "--horizon", "5", "--steps", "6", "--reference-samples", "8", "--out", str(out),
                 "--plot", str(plot), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| step | reward | chosen: predicted" in printed and "3 plans" in printed
    assert len(json.loads(out.read_text())["plans"]) == 3 and plot.stat().st_size > 0
    assert main(["audit", "--task", "cartpole_swingup", "--steps", "0"]) == 2
