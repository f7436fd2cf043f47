"""Few-shot fine-tuning on a target task (issue 19, paper fig. 6b): one command, every stage resumable.

    .venv/bin/python experiments/generalist/fewshot.py --config experiments/generalist/config/fewshot.yaml
    .venv/bin/python experiments/generalist/fewshot.py --config ... --report   # table and plot only

Stages, each skipped where its output is on disk:
  1. draws: M target episodes per draw, `tdm-train subset` of the target's dataset;
  2. training: one pipeline config per (method, M, draw), written under <out>/configs/, trained with
     `tdm-train fit` and exported with `tdm-train export` (two at a time, one thread each);
  3. evaluation: an evaluation grid of every model with one planner (tdm_control.evaluation.grid);
  4. report: <out>/report.md (mean return and 68% interval over draws x seeds, per method and M) and
     <out>/fewshot.png (return against M, the reference model as a line).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import os
import re
import subprocess
import sys

import numpy as np
import yaml

from tdm_control.config import check, from_dict
from tdm_control.files import read_yaml


@dataclasses.dataclass(frozen=True)
class Method:
    pipeline: str
    """Pipeline YAML whose model (and kind) and train sections this method takes."""
    steps: dict
    """M -> optimiser steps of training (fine-tuning) on M episodes."""
    init_from: str | None = None
    """Checkpoint of a pretrained generalist to fine-tune; None trains from scratch."""
    train: dict = dataclasses.field(default_factory=dict)
    """TrainConfig keys overriding the pipeline's."""


@dataclasses.dataclass(frozen=True)
class FewShotConfig:
    out: str
    """Folder for configs, runs, models, the evaluation grid and the report."""
    target: str
    """Registered target task (never in any pretraining set)."""
    source: str
    """The target's dataset folder that draws are taken from."""
    episodes: tuple[int, ...]
    """M values: target episodes per draw."""
    draws: tuple[int, ...]
    """Seeds of independent draws of M episodes."""
    methods: dict
    """Label -> Method keys."""
    evaluation: dict
    """{planner: {...}, horizon: N, seeds: [...], steps: control steps, action_repeat: R}."""
    draw_seeds: dict = dataclasses.field(default_factory=dict)
    """M -> its own draw seeds, where two of `draws` happen to take the same episodes (checked)."""
    reference: dict = dataclasses.field(default_factory=dict)
    """Label -> model file drawn as a horizontal line (e.g. the specialist trained on all episodes)."""
    workers: int = 2
    """Trainings (and evaluation episodes) run at once, one thread each."""

    def draws_of(self, episodes: int) -> tuple[int, ...]:
        return tuple(self.draw_seeds.get(episodes, self.draws))

    def method_list(self) -> dict[str, Method]:
        methods = {label: from_dict(Method, m, where=f"methods.{label}") for label, m in self.methods.items()}
        for label, m in methods.items():
            missing = [n for n in self.episodes if n not in m.steps]
            check(not missing, f"methods.{label}.steps", f"gives no steps for M = {missing}")
        return methods


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def draw_folder(config: FewShotConfig, episodes: int, draw: int) -> str:
    return os.path.join(config.out, "data", f"{config.target}_M{episodes}_d{draw}")


def make_draws(config: FewShotConfig) -> None:
    from training.dataset import subset_dataset

    for m in config.episodes:
        taken: dict[tuple[int, ...], int] = {}
        for d in config.draws_of(m):
            episodes = tuple(subset_dataset(config.source, draw_folder(config, m, d), m, d))
            check(episodes not in taken, "draw_seeds", f"draws {taken.get(episodes)} and {d} of M = {m} took the same "
                  f"episodes {list(episodes)}: they would not be independent; give M = {m} other seeds, "
                  f"e.g. draw_seeds: {{{m}: [{taken.get(episodes)}, {max(config.draws_of(m)) + 1}]}}")
            taken[episodes] = d


def training_runs(config: FewShotConfig) -> list[dict]:
    """Every (method, M, draw): its label, pipeline config (as a dict) and model path."""
    from training.pipeline import load_pipeline

    runs = []
    for label, method in config.method_list().items():
        base = read_yaml(method.pipeline, "pipeline config")
        model = dict(base.get("model", {}))
        if base.get("tasks"):  # a generalist's table (its largest n and m) is kept for the target
            table = load_pipeline(method.pipeline).model_config()
            model.update(observation_slots=table.observation_slots, action_slots=table.action_slots)
        for m in config.episodes:
            for d in config.draws_of(m):
                name = f"{slug(label)}_M{m}_d{d}"
                train = {**base.get("train", {}), **method.train, "max_steps": method.steps[m]}
                train.pop("keep_every", None)
                if method.init_from:
                    train["init_from"] = method.init_from
                pipeline = {"task": config.target, "data_dir": draw_folder(config, m, d),
                            "run_dir": os.path.join(config.out, "runs", name),
                            "model_path": os.path.join(config.out, "models", f"{name}.onnx"),
                            "kind": base.get("kind", "tdm"), "model": model, "train": train}
                runs.append({"method": label, "episodes": m, "draw": d, "name": name, "pipeline": pipeline})
    return runs


def train_one(run: dict, out: str) -> str:
    """Trains and exports one run in a subprocess (logs under <out>/logs); returns its model path."""
    path = os.path.join(out, "configs", f"{run['name']}.yaml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump(run["pipeline"], f, sort_keys=False)
    log = os.path.join(out, "logs", f"{run['name']}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    tdm_train = os.path.join(os.path.dirname(sys.executable), "tdm-train")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for stage in ("fit", "export"):
        with open(log, "a") as f:
            code = subprocess.run([tdm_train, stage, "--config", path, "--no-progress"], stdout=f,
                                  stderr=subprocess.STDOUT, env=env).returncode
        if code != 0:
            with open(log) as f:
                last = [line.strip() for line in f if line.strip()][-1:] or ["(no output)"]
            raise RuntimeError(f"tdm-train {stage} of {run['name']} failed (exit {code}): {last[0]}; the whole "
                               f"log: {log}. Fix it and run again: finished models are kept")
    return run["pipeline"]["model_path"]


def train_all(config: FewShotConfig) -> None:
    todo = [r for r in training_runs(config) if not os.path.exists(r["pipeline"]["model_path"])]
    print(f"training: {len(todo)} of {len(training_runs(config))} models to train", flush=True)
    with concurrent.futures.ThreadPoolExecutor(config.workers) as pool:
        futures = {pool.submit(train_one, r, config.out): r for r in todo}
        for i, future in enumerate(concurrent.futures.as_completed(futures), 1):
            r = futures[future]
            future.result()
            print(f"[{i}/{len(todo)}] trained {r['name']} ({r['pipeline']['train']['max_steps']} steps)", flush=True)


def grid_config(config: FewShotConfig):
    from tdm_control.evaluation.grid import GridConfig

    e = config.evaluation
    models = {f"{r['method']} | M={r['episodes']} | draw {r['draw']}": r["pipeline"]["model_path"]
              for r in training_runs(config)}
    models.update(config.reference)
    experiment = {"name": "few-shot", "models": models, "planners": [e["planner"]], "horizons": [e["horizon"]],
                  "action_repeat": e.get("action_repeat", 0)}
    return GridConfig(out=os.path.join(config.out, "grid"), task=config.target, experiments=(experiment,),
                      seeds=tuple(e["seeds"]), steps=e.get("steps", 1000), workers=config.workers)


def summary(config: FewShotConfig, results: list[dict]) -> list[dict]:
    """Per (method, M): returns over draws x seeds, mean and one standard error; reference rows M = None."""
    from tdm_control.evaluation.episodes import standard_error

    groups: dict[tuple, list[float]] = {}
    for r in results:
        parts = r["model_label"].split(" | ")
        key = (parts[0], int(parts[1][2:])) if len(parts) == 3 else (parts[0], None)
        groups.setdefault(key, []).append(r["return"])
    order = list(config.methods) + list(config.reference)
    rows = [{"method": k[0], "episodes": k[1], "returns": v, "mean": float(np.mean(v)),
             "sem": standard_error(np.array(v))} for k, v in groups.items()]
    return sorted(rows, key=lambda r: (order.index(r["method"]), r["episodes"] or 0))


STEP_LINE = re.compile(r"^step (\d+): train [\d.]+\s+val ([\d.]+)")


def validation_curve(config: FewShotConfig, name: str) -> list[tuple[int, float]]:
    """(step, validation loss) of run `name`, from the lines `tdm-train fit` printed to its log. With
    fewer than 20 episodes nothing is held out: the loss is then on a training episode."""
    path = os.path.join(config.out, "logs", f"{name}.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [(int(m.group(1)), float(m.group(2))) for m in map(STEP_LINE.match, f) if m]


def plot_curves(config: FewShotConfig) -> str:
    """<out>/curves.png: validation loss against (fine-tuning) steps, one panel per M, draw 0 of each
    TDM method (paper fig. 6c, in loss rather than return: a return per checkpoint costs an episode)."""
    from tdm_control.evaluation.plots import pyplot, save

    plt = pyplot()
    fig, axes = plt.subplots(1, len(config.episodes), figsize=(3.2 * len(config.episodes), 3.2), sharey=True)
    for ax, m in zip(np.atleast_1d(axes), config.episodes):
        for r in training_runs(config):
            if r["episodes"] == m and r["draw"] == config.draws_of(m)[0] and r["pipeline"]["kind"] == "tdm":
                curve = validation_curve(config, r["name"])
                if curve:
                    ax.plot(*zip(*curve), marker=".", label=r["method"])
        ax.set_title(f"M = {m}")
        ax.set_xlabel("steps")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("validation loss (nats per token)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(config.out, "curves.png")
    save(fig, path)
    return path


def report(config: FewShotConfig, rows: list[dict]) -> str:
    from tdm_control.evaluation.plots import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method in config.methods:
        pts = [r for r in rows if r["method"] == method]
        if pts:
            ax.errorbar([r["episodes"] for r in pts], [r["mean"] for r in pts], yerr=[r["sem"] for r in pts],
                        marker="o", capsize=3, label=method)
    for r in rows:
        if r["episodes"] is None:
            ax.axhline(r["mean"], color="k", linestyle="--", linewidth=1, label=r["method"])
    ax.set_xscale("log")
    ax.set_xticks(list(config.episodes), [str(m) for m in config.episodes])
    ax.set_xlabel("target episodes M")
    ax.set_ylabel(f"return on {config.target}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, os.path.join(config.out, "fewshot.png"))
    e = config.evaluation
    lines = [f"# Few-shot fine-tuning on {config.target}", "",
             f"Planner: {e['planner']}, horizon {e['horizon']}; {e.get('steps', 1000)}-step episodes, seeds "
             f"{list(e['seeds'])} per model, draws {list(config.draws)} (M = 1: {list(config.draws_of(1))}). "
             "Return: mean and 68% interval over draws x seeds.", "",
             "| method | M | return | episodes |", "|---|---|---|---|"]
    for r in rows:
        m = "all" if r["episodes"] is None else str(r["episodes"])
        lines.append(f"| {r['method']} | {m} | {r['mean']:.1f} ± {r['sem']:.1f} | "
                     f"{', '.join(f'{x:.1f}' for x in r['returns'])} |")
    plot_curves(config)
    lines += ["", "![few-shot](fewshot.png)", "", "![validation loss against steps](curves.png)", ""]
    text = "\n".join(lines)
    with open(os.path.join(config.out, "report.md"), "w") as f:
        f.write(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--report", action="store_true", help="table and plot from the runs on disk only")
    args = parser.parse_args(argv)
    config = from_dict(FewShotConfig, read_yaml(args.config, "few-shot config"), where=args.config)
    config.method_list()
    from tdm_control.evaluation.grid import load_results, run_grid

    grid = grid_config(config)
    if not args.report:
        make_draws(config)
        try:
            train_all(config)
        except RuntimeError as e:
            print(f"fewshot: error: {e}", file=sys.stderr)
            return 2
        run_grid(grid, show_progress=False)
    print(report(config, summary(config, load_results(grid))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
