"""The command line: clear errors for bad input, a JSON result for a short evaluation."""

import json

import pytest

from tdm_control import cli


def test_unknown_task_planner_and_model_list_the_choices(capsys):
    for argv, expected in [
        (["eval", "--task", "cartpole_swingdown"], "cartpole_swingup"),
        (["eval", "--planner", "annealing"], "random_shooting"),
        (["eval", "--model", "transformer"], "mujoco"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        assert expected in capsys.readouterr().err


def test_misspelled_planner_key_and_bad_counts(capsys):
    assert cli.main(["eval", "--set", "warm_fractoin=0.5", "--planner", "warm_start", "--episodes", "1"]) == 2
    assert "did you mean 'warm_fraction'" in capsys.readouterr().err
    assert cli.main(["eval", "--episodes", "0"]) == 2
    assert "--episodes" in capsys.readouterr().err
    assert cli.main(["eval", "--samples", "0", "--episodes", "1"]) == 2
    assert "samples" in capsys.readouterr().err


def test_short_evaluation_writes_a_result(tmp_path, capsys):
    out = tmp_path / "result.json"
    code = cli.main(["eval", "--task", "cartpole_swingup", "--planner", "warm_start", "--samples", "8",
                     "--horizon", "5", "--episodes", "2", "--steps", "15", "--seed", "3",
                     "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean return" in printed and "latency" in printed
    result = json.loads(out.read_text())
    assert len(result["returns"]) == 2 and result["steps"] == 15
    lo, hi = result["return_interval_68"]
    assert lo <= result["mean_return"] <= hi
    assert all(0.0 <= r <= 15.0 for r in result["returns"])
    # The per-step rewards (for plots of when an episode fails) add up to each return.
    assert [len(t) for t in result["episode_rewards"]] == [15, 15]
    for trace, episode_return in zip(result["episode_rewards"], result["returns"]):
        assert sum(trace) == pytest.approx(episode_return, abs=1e-3)
    assert result["planner_config"] == {"samples": 8, "horizon": 5, "noise_variance": 2.0,
                                        "warm_fraction": 0.5, "warm_variance": 0.1}
    assert result["latency_median_s"] > 0

    # The per-step rewards plot, episode 1 against episode 0 of the same file.
    png = tmp_path / "rewards.png"
    assert cli.main(["plot-rewards", f"first={out}", "--out", str(png)]) == 0
    assert cli.main(["plot-rewards", f"second={out}", "--episode", "1", "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    printed = capsys.readouterr().out
    assert f"return {result['returns'][1]:.1f}" in printed
    assert cli.main(["plot-rewards", str(out), "--episode", "2", "--out", str(png)]) == 2
    assert "holds 2 episode(s); there is no episode 2" in capsys.readouterr().err
    (tmp_path / "plain.json").write_text('{"returns": [1.0]}')
    assert cli.main(["plot-rewards", str(tmp_path / "plain.json"), "--out", str(png)]) == 2
    assert "records no per-step rewards" in capsys.readouterr().err


def test_action_repeat_plans_every_few_steps_and_holds_in_between(tmp_path, capsys):
    out = tmp_path / "repeat.json"
    assert cli.main(["eval", "--planner", "random_shooting", "--samples", "8", "--horizon", "4",
                     "--episodes", "1", "--steps", "12", "--action-repeat", "3", "--out", str(out),
                     "--no-progress"]) == 0
    assert "planned every 3 control steps" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["action_repeat"] == 3 and result["steps"] == 12
    assert cli.main(["eval", "--action-repeat", "-1", "--episodes", "1", "--steps", "2"]) == 2
