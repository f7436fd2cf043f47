"""The evaluation grid: expansion, parallel resumable runs, report and plots."""

import hashlib
import json
import os
import shutil

import pytest

from tdm_control import cli
from tdm_control.config import ConfigError
from tdm_control.evaluation.grid import expand, load_grid, load_results, run_id
from tdm_control.evaluation.grid_report import _varying, plot_experiment, plot_filename

GRID = """
out: {out}
task: cartpole_swingup
seeds: [0, 1]
steps: 6
workers: 2
experiments:
  - name: horizon
    models: {{ground truth: mujoco, TDM: {tdm}}}
    planners: [{{planner: random_shooting, samples: 4}}]
    horizons: [2, 3]
  - name: proposal noise
    models: {{TDM: {tdm}}}
    planners: [{{planner: proposal, samples: 4, noise_variance: [0.1, 0.5]}}]
    horizons: [2]
prediction_error: {{horizon: 4, starts: 2}}
"""


def test_grid_expands_runs_resumes_and_reports(tiny_model, tmp_path, capsys):
    _, tdm, _ = tiny_model
    spec = tmp_path / "grid.yaml"
    out = tmp_path / "out"
    spec.write_text(GRID.format(out=out, tdm=tdm))
    config = load_grid(str(spec))
    runs = expand(config)
    # 2 models x 2 horizons x 2 seeds + 2 noise levels x 2 seeds
    assert len(runs) == 12 and len({run_id(r) for r in runs}) == 12
    assert cli.main(["grid", str(spec), "--no-progress"]) == 0
    files = sorted(os.listdir(out / "runs"))
    assert len(files) == 12
    result = json.loads((out / "runs" / files[0]).read_text())
    assert {"return", "latency_median_s", "planner_params", "seed"} <= set(result)
    assert len(result["rewards"]) == 6 and sum(result["rewards"]) == pytest.approx(result["return"], abs=1e-3)
    # A second call finds every run on disk and only rewrites the report.
    stamp = {f: os.path.getmtime(out / "runs" / f) for f in files}
    assert cli.main(["grid", str(spec), "--no-progress"]) == 0
    assert stamp == {f: os.path.getmtime(out / "runs" / f) for f in files}
    report = (out / "report.md").read_text()
    assert "## horizon" in report and "## proposal noise" in report and "noise_variance=0.5" in report
    assert "Open-loop prediction error" in report
    assert "(horizon_rewards.png)" in report
    for png in ("horizon.png", "proposal_noise.png", "prediction_error.png", "horizon_rewards.png"):
        assert (out / png).stat().st_size > 10_000


def test_plot_file_names_are_plain():
    assert plot_filename("return against horizon (fig. 4)") == "return_against_horizon_fig_4.png"
    assert plot_filename("proposal noise") == "proposal_noise.png"


def _row(planner, mean, **params):
    return {"model": "TDM", "planner": planner, "params": params, "objective": "observation",
            "mean": mean, "sem": 1.0, "latency_s": 0.1, "returns": [mean]}


def test_plots_of_planners_with_different_settings(tmp_path):
    # Random shooting has no noise_variance; CEM's elites are not MPPI's: each plot still draws.
    compare_k = [_row("random_shooting", 600, samples=64, horizon=50),
                 _row("random_shooting", 490, samples=16, horizon=50),
                 _row("proposal", 780, samples=64, horizon=50, noise_variance=0.2),
                 _row("proposal", 600, samples=16, horizon=50, noise_variance=0.2)]
    assert _varying(compare_k) == "samples"
    budget = [_row("random_shooting", 600, samples=64, horizon=50), _row("cem", 690, samples=16, elites=4, horizon=50),
              _row("mppi", 560, samples=16, temperature=0.5, horizon=50)]
    assert _varying(budget) is None  # one configuration per line: bars
    for name, rows in (("k", compare_k), ("budget", budget)):
        plot_experiment(rows, name, str(tmp_path / f"{name}.png"))
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_grid_errors_name_what_is_wrong(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("out: x\ntask: cartpole_swingup\n"
                    "experiments: [{name: a, models: {gt: mujoco}, planners: [{samples: 3}]}]\n")
    with pytest.raises(ConfigError, match="'planner' key"):
        load_grid(str(spec))
    spec.write_text("out: x\ntask: cartpole_swingup\nseed: [0]\nexperiments: []\n")
    with pytest.raises(ConfigError, match="seed.*did you mean 'seeds'"):
        load_grid(str(spec))
    spec.write_text("out: x\ntask: cartpole_swingup\nexperiments: [{name: a, models: {gt: mujoco}, "
                    "planners: [{planner: cem, elite: 3}]}]\n")
    assert cli.main(["grid", str(spec), "--report"]) == 2
    spec.write_text("out: x\ntask: cartpole_swingup\n  experiments: []\n")  # bad indentation
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_grid(str(spec))


def test_a_run_shared_by_two_experiments_runs_once(tmp_path, capsys):
    spec = tmp_path / "grid.yaml"
    out = tmp_path / "out"
    experiment = "{{name: {name}, models: {{gt: mujoco}}, planners: [{{planner: random_shooting, samples: 4}}], " \
                 "horizons: [2]}}"
    spec.write_text(f"out: {out}\ntask: cartpole_swingup\nseeds: [0]\nsteps: 4\nworkers: 2\nexperiments: ["
                    + experiment.format(name="first") + ", " + experiment.format(name="second") + "]\n")
    assert cli.main(["grid", str(spec)]) == 0
    assert len(os.listdir(out / "runs")) == 1
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count(": return ") == 1  # one episode ran, not two
    report = (out / "report.md").read_text()
    assert "## first" in report and "## second" in report


def test_a_model_retrained_at_the_same_path_is_not_mixed_with_its_old_results(tiny_model, tmp_path, capsys):
    _, tdm, _ = tiny_model
    model = tmp_path / "model.onnx"
    shutil.copy(tdm, model)
    spec = tmp_path / "grid.yaml"
    out = tmp_path / "out"
    spec.write_text(f"out: {out}\ntask: cartpole_swingup\nseeds: [0]\nsteps: 4\nworkers: 1\nexperiments: "
                    f"[{{name: n, models: {{m: {model}}}, planners: [{{planner: random_shooting, samples: 4}}], "
                    "horizons: [2]}]\nprediction_error: {horizon: 3, starts: 2}\n")
    assert cli.main(["grid", str(spec), "--no-progress"]) == 0
    [name] = os.listdir(out / "runs")

    def recorded() -> str:
        return json.loads((out / "runs" / name).read_text())["model_sha256"]

    assert recorded() == hashlib.sha256(model.read_bytes()).hexdigest()
    assert json.loads((out / "prediction_error" / "m.json").read_text())["model_sha256"] == recorded()
    # The file at that path is replaced by another model: its old result is not reported as this one's ...
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", "models", "cartpole_swingup_mlp_delta.onnx"), model)
    capsys.readouterr()
    assert load_results(load_grid(str(spec))) == []
    assert "was made with another version of" in capsys.readouterr().out
    # ... and the next grid run replaces it.
    assert cli.main(["grid", str(spec), "--no-progress"]) == 0
    assert "(sha256 differs); running it again" in capsys.readouterr().out
    assert recorded() == hashlib.sha256(model.read_bytes()).hexdigest()
    assert len(load_results(load_grid(str(spec)))) == 1
    errors = json.loads((out / "prediction_error" / "m.json").read_text())  # recomputed for the new file too
    assert errors["model_sha256"] == recorded()


def test_an_experiment_over_several_tasks_runs_and_reports_each(tmp_path, capsys):
    """Zero-shot grids list held-out variants as one experiment's `tasks`: one row (and run) per task,
    each episode simulated on its own task's physics; an unknown task is named before anything runs."""
    spec = tmp_path / "grid.yaml"
    out = tmp_path / "out"
    spec.write_text(f"out: {out}\ntask: cartpole_swingup\nseeds: [0]\nsteps: 4\nworkers: 2\nexperiments: ["
                    "{name: variants, tasks: [cartpole_swingup~v10000, cartpole_swingup~v10001], "
                    "models: {gt: mujoco}, planners: [{planner: random_shooting, samples: 4}], horizons: [2]}]\n")
    config = load_grid(str(spec))
    assert [r["task"] for r in expand(config)] == ["cartpole_swingup~v10000", "cartpole_swingup~v10001"]
    assert cli.main(["grid", str(spec)]) == 0
    results = load_results(config)
    assert sorted(r["task"] for r in results) == ["cartpole_swingup~v10000", "cartpole_swingup~v10001"]
    assert results[0]["return"] != results[1]["return"]  # other masses, lengths and gear: other episodes
    report = (out / "report.md").read_text()
    assert "gt on cartpole_swingup~v10000" in report and "gt on cartpole_swingup~v10001" in report
    assert report.startswith("# Evaluation grid: 2 tasks (cartpole_swingup~v10000, cartpole_swingup~v10001)")
    spec.write_text(spec.read_text().replace("~v10001", "~vX"))
    with pytest.raises(ConfigError, match="vX"):
        load_grid(str(spec))
