"""An evaluation grid: tasks x models x planners x horizons x seeds, run in parallel, resumable.

    tdm-control grid config/eval/cartpole_swingup.yaml            # runs what is missing
    tdm-control grid config/eval/cartpole_swingup.yaml --report   # tables and plots only

A grid file lists experiments; each expands into runs, one closed-loop episode
each, identified by a hash of everything that defines it, and written as
`<out>/runs/<hash>.json`. Runs already on disk are skipped, so an interrupted
grid continues where it stopped and a grown grid runs only what is new. A run
records the sha256 of its model file; one made with a file since changed (a
model retrained at the same path) is run again, and reports leave it out.

    out: results/cartpole_swingup
    task: cartpole_swingup
    seeds: [0, 1, 2, 3]
    steps: 1000
    workers: 2
    experiments:
      - name: horizon
        models: {ground truth: mujoco, TDM: models/cartpole_swingup_tdm.onnx}
        planners:
          - {planner: random_shooting, samples: 128}
        horizons: [25, 50, 100]
    prediction_error: {horizon: 100, starts: 30}   # optional: fig. 13 for every model named

A planner entry's list values expand too ({noise_variance: [0.1, 0.5]} is two
planners). Reports: `<out>/report.md` (one table per experiment: mean return
with a 68% interval, planning time) and PNG plots beside it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import os
from typing import Any

import numpy as np
from tqdm import tqdm

from tdm_control.config import check, from_dict
from tdm_control.files import read_yaml, write_json
from tdm_control.planning.objectives import OBJECTIVES


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    """Label of the table and plot."""
    models: dict
    """Label -> model ('mujoco' or a path to an .onnx file)."""
    planners: tuple[Any, ...]
    """Planner entries: {planner: NAME, key: value or [values], ...}."""
    horizons: tuple[int, ...] = (50,)
    """N values; each planner runs at each."""
    objectives: tuple[str, ...] = ("observation",)
    """Each planner runs with each: 'observation' (task reward of predicted observations) and/or
    'predicted' (the model's reward predictions, paper eq. 6)."""
    action_repeat: int = 0
    """Control steps each planned action is held; 0: each model's own (1 for mujoco)."""
    tasks: tuple[str, ...] = ()
    """Registered tasks (or variants) this experiment runs on, each as its own row; empty: the grid's task."""

    def __post_init__(self) -> None:
        check(bool(self.models), f"{self.name}.models", "needs at least one model")
        check(bool(self.planners), f"{self.name}.planners", "needs at least one planner")
        for objective in self.objectives:
            check(objective in OBJECTIVES, f"{self.name}.objectives",
                  f"unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")
        for entry in self.planners:
            check(isinstance(entry, dict) and "planner" in entry, f"{self.name}.planners",
                  f"each entry needs a 'planner' key, got {entry!r}")


@dataclasses.dataclass(frozen=True)
class GridConfig:
    out: str
    """Folder for runs, report and plots."""
    task: str
    """Registered task of every experiment that names none."""
    experiments: tuple[Any, ...]
    """Experiment dicts (see Experiment)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    """One episode per seed for every run."""
    steps: int = 1000
    """Control steps per episode."""
    workers: int = 2
    """Parallel processes (each single-threaded)."""
    prediction_error: dict = dataclasses.field(default_factory=dict)
    """Optional {horizon, starts}: open-loop error of every model named in the grid."""

    def experiment_list(self) -> list[Experiment]:
        return [from_dict(Experiment, e, where=f"experiments[{i}]") for i, e in enumerate(self.experiments)]


def expand_planner(entry: dict) -> list[dict]:
    """{planner: cem, iterations: [2, 4]} -> two planner dicts."""
    keys = [k for k in entry if k != "planner"]
    values = [v if isinstance(v, list) else [v] for v in (entry[k] for k in keys)]
    return [{"planner": entry["planner"], **dict(zip(keys, combo))} for combo in itertools.product(*values)]


def expand(config: GridConfig) -> list[dict[str, Any]]:
    """Every run of the grid: dicts with experiment, model label/path, planner, params, horizon, seed."""
    runs = []
    for exp in config.experiment_list():
        for task, (label, model), entry, horizon, objective, seed in itertools.product(
                exp.tasks or (config.task,), exp.models.items(), [p for e in exp.planners for p in expand_planner(e)],
                exp.horizons, exp.objectives, config.seeds):
            params = {k: v for k, v in entry.items() if k != "planner"}
            runs.append({"experiment": exp.name, "task": task, "model_label": label, "model": model,
                         "planner": entry["planner"], "planner_params": {**params, "horizon": horizon},
                         "objective": objective, "seed": seed, "steps": config.steps,
                         "action_repeat": exp.action_repeat})
    return runs


def run_id(run: dict[str, Any]) -> str:
    """Hash of what defines a run (not its experiment name or model label)."""
    key = {k: run[k] for k in ("task", "model", "planner", "planner_params", "objective", "seed", "steps",
                               "action_repeat")}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def execute(run: dict[str, Any]) -> dict[str, Any]:
    """One episode of one run, single-threaded (the grid runs several at once)."""
    from tdm_control.controller import build_controller
    from tdm_control.dynamics import make_dynamics, model_digest
    from tdm_control.evaluation.episodes import EvalConfig, reward_trace, run_episode
    from tdm_control.tasks import make_task
    from tdm_control.tasks.simulator import Simulator

    task = make_task(run["task"])
    config = EvalConfig(task=run["task"], model=run["model"], planner=run["planner"],
                        planner_params=run["planner_params"], objective=run["objective"], episodes=1,
                        steps=run["steps"], seed=run["seed"], action_repeat=run["action_repeat"])
    kwargs = {"nthread": 1} if run["model"] == "mujoco" else {"threads": 1}
    dynamics = make_dynamics(run["model"], task, action_repeat=run["action_repeat"], **kwargs)
    # Episode 0's generator with the run's seed: a grid run is one episode of its own.
    controller = build_controller(config, task, 0, dynamics)
    simulator = Simulator(task, seed=run["seed"])
    try:
        episode_return, latencies, rewards = run_episode(simulator, controller, run["steps"])
    finally:
        dynamics.close()
    return {**run, "model_sha256": model_digest(run["model"]), "return": episode_return,
            "latency_median_s": float(np.median(latencies)), "latency_mean_s": float(np.mean(latencies)),
            "latency_p95_s": float(np.percentile(latencies, 95)),
            "rewards": reward_trace(rewards)}  # (steps,): the reward of every control step


def _work(args: tuple[dict[str, Any], str]) -> dict[str, Any]:
    run, path = args
    result = execute(run)
    write_json(path, result)
    return result


def run_grid(config: GridConfig, show_progress: bool = True) -> list[dict[str, Any]]:
    """Runs the missing runs of the grid in parallel; returns every run's result."""
    folder = os.path.join(config.out, "runs")
    os.makedirs(folder, exist_ok=True)
    runs = expand(config)
    digests = model_digests(runs)
    todo = [(r, os.path.join(folder, f"{run_id(r)}.json")) for r in runs]
    todo = list({p: (r, p) for r, p in todo}.values())  # a run shared by two experiments runs once
    todo = [(r, p) for r, p in todo if _to_run(p, r["model"], digests[r["model"]])]
    if todo:
        with tqdm(total=len(todo), disable=not show_progress, unit="episode", desc=f"grid {config.task}") as bar:
            with multiprocessing.get_context("spawn").Pool(config.workers, initializer=_single_thread) as pool:
                for result in pool.imap_unordered(_work, todo):
                    bar.update(1)
                    bar.write(f"{result['experiment']}: {result['model_label']} {result['planner']} "
                              f"{json.dumps(result['planner_params'])} seed {result['seed']}: "
                              f"return {result['return']:.1f}")
    return load_results(config)


def _single_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"


def model_digests(runs: list[dict[str, Any]]) -> dict[str, str | None]:
    """Model name -> sha256 of its file(s) now (None for mujoco), each file read once."""
    from tdm_control.dynamics import model_digest

    return {name: model_digest(name) for name in {r["model"] for r in runs}}


def made_with(result: dict[str, Any], digest: str | None) -> bool:
    """Whether `result` (a run, a cached prediction error) was made with the model file whose sha256
    is `digest`. Results from before digests were recorded carry none and count as made with it."""
    return result.get("model_sha256") in (None, digest)


def read_result(path: str) -> dict[str, Any] | None:
    """The result JSON at `path`, or None when there is none yet."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _to_run(path: str, model: str, digest: str | None) -> bool:
    """Whether the run written to `path` must run: not on disk, or made with another version of `model`."""
    result = read_result(path)
    if result is not None and not made_with(result, digest):
        print(f"{path}: made with another version of {model} (sha256 differs); running it again")
        return True
    return result is None


def load_results(config: GridConfig) -> list[dict[str, Any]]:
    """Results of the grid's runs that are on disk, relabelled for this grid's experiments.

    A run made with another version of its model file is left out, with a warning.
    """
    runs = expand(config)
    digests = model_digests(runs)
    out = []
    for run in runs:
        path = os.path.join(config.out, "runs", f"{run_id(run)}.json")
        result = read_result(path)
        if result is None:
            continue
        if not made_with(result, digests[run["model"]]):
            print(f"warning: {path} was made with another version of {run['model']}; left out "
                  "(run the grid again to replace it)")
            continue
        out.append({**result, **run})
    return out


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (experiment, task, model, planner, params): mean return over seeds, 68% interval, latency."""
    from tdm_control.evaluation.episodes import standard_error

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        key = json.dumps([r["experiment"], r["task"], r["model_label"], r["planner"], r["planner_params"],
                          r["objective"]], sort_keys=True)
        groups.setdefault(key, []).append(r)
    rows = []
    for members in groups.values():
        members = sorted(members, key=lambda m: m["seed"])
        returns = np.array([m["return"] for m in members])
        sem = standard_error(returns)
        first = members[0]
        rows.append({"experiment": first["experiment"], "task": first["task"], "model": first["model_label"],
                     "planner": first["planner"],
                     "params": first["planner_params"], "objective": first["objective"],
                     "mean": float(returns.mean()), "sem": sem, "returns": returns.tolist(),  # by seed
                     "latency_s": float(np.median([m["latency_median_s"] for m in members]))})
    return rows


def load_grid(path: str) -> GridConfig:
    raw = read_yaml(path, "grid file")
    config = from_dict(GridConfig, raw, where=path)
    from tdm_control.tasks import make_task

    for task in {config.task}.union(*(e.tasks for e in config.experiment_list())):
        make_task(task)  # an unknown task is named now, not in a worker mid-grid
    return config
