"""Tables and plots for an evaluation grid: return against horizon, noise and planning time; prediction error."""

from __future__ import annotations

import json
import os
import re
import textwrap
from typing import Any

import numpy as np

from tdm_control.evaluation.grid import GridConfig, load_results, made_with, read_result, summarize
from tdm_control.evaluation.plots import pyplot, save
from tdm_control.files import write_json


def _label(row: dict[str, Any], skip: str) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(row["params"].items()) if k != skip)
    text = f"{row['model']} / {row['planner']}"
    if params:
        text += f" ({params})"
    if row["objective"] != "observation":
        text += f" [{row['objective']} reward]"
    return text


def _varying(rows: list[dict[str, Any]]) -> str | None:
    """The x axis of the plot: the planner parameter every row has that takes most values, or None
    (one bar per row) when none varies or when no line would get more than one point."""
    common = set.intersection(*(set(r["params"]) for r in rows)) if rows else set()
    counts = {key: len({json.dumps(r["params"][key]) for r in rows}) for key in common}
    best = max(counts.items(), key=lambda kv: (kv[1], kv[0] == "horizon"), default=(None, 1))
    if best[1] <= 1:
        return None
    lines = {_label(r, best[0]) for r in rows}
    return best[0] if len(lines) < len(rows) else None


def tasks_of(rows: list[dict[str, Any]], config: GridConfig) -> str:
    """The task the rows ran on, or the tasks when an experiment's `tasks:` named several."""
    names = list(dict.fromkeys(r.get("task", config.task) for r in rows)) or [config.task]
    return names[0] if len(names) == 1 else f"{len(names)} tasks ({', '.join(names)})"


def markdown(rows: list[dict[str, Any]], config: GridConfig, traced: frozenset[str] = frozenset()) -> str:
    """The report: one table per experiment, its plot, and its reward traces when `traced` names it."""
    lines = [f"# Evaluation grid: {tasks_of(rows, config)}", "",
             f"{config.steps}-step episodes, seeds {list(config.seeds)}; mean return with a 68% interval "
             f"(± one standard error over episodes); planning latency is the median time of one plan.", ""]
    for name in dict.fromkeys(r["experiment"] for r in rows):
        members = [r for r in rows if r["experiment"] == name]
        lines += [f"## {name}", "",
                  "| model | planner | settings | objective | return | episodes (by seed) | plan (ms) |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted(members, key=lambda r: (r["model"], r["planner"], json.dumps(r["params"], sort_keys=True))):
            settings = ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items()))
            lines.append(f"| {r['model']} | {r['planner']} | {settings} | {r['objective']} | "
                         f"{r['mean']:.1f} ± {r['sem']:.1f} | {', '.join(f'{x:.1f}' for x in r['returns'])} | "
                         f"{1e3 * r['latency_s']:.1f} |")
        lines += ["", f"![{name}]({plot_filename(name)})", ""]
        if name in traced:
            lines += [f"![{name}: reward of every step]({rewards_filename(name)})", ""]
    return "\n".join(lines)


def plot_experiment(rows: list[dict[str, Any]], name: str, path: str) -> None:
    """Return against the varying parameter (left) and against planning time (right)."""
    plt = pyplot()

    x_key = _varying(rows)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    lines: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        lines.setdefault(_label(r, x_key), []).append(r)
    for index, (label, members) in enumerate(sorted(lines.items())):
        members.sort(key=lambda r: r["params"].get(x_key, 0) if x_key else 0)
        color = f"C{index % 10}"
        mean = np.array([m["mean"] for m in members])
        sem = np.array([m["sem"] for m in members])
        latency = np.array([m["latency_s"] for m in members])
        if x_key:
            x = np.array([m["params"][x_key] for m in members], dtype=float)
            axes[0].plot(x, mean, marker="o", label=label, color=color)
            axes[0].fill_between(x, mean - sem, mean + sem, color=color, alpha=0.2)
        else:  # nothing varies: one bar per configuration
            axes[0].barh([index], mean, xerr=sem, color=color, capsize=3)
        axes[1].errorbar(1e3 * latency, mean, yerr=sem, marker="o", color=color, label=label)
    if x_key:
        axes[0].set_xlabel(x_key)
        axes[0].set_ylabel("episode return")
    else:
        axes[0].set_yticks(range(len(lines)), [textwrap.fill(label, 40) for label in sorted(lines)], fontsize=7)
        axes[0].set_xlabel("episode return")
    axes[1].set_xlabel("planning time per plan (ms, median)")
    axes[1].set_xscale("log")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    if x_key:
        axes[0].legend(fontsize=7)
    else:
        axes[1].legend(fontsize=7)
    fig.suptitle(name)
    fig.tight_layout()
    save(fig, path, dpi=110)


def plot_reward_traces(results: list[dict[str, Any]], name: str, path: str) -> bool:
    """The reward of every control step, one panel per planner setting, one line per seed:
    shows when an episode fails (the walker falls, the pole drops). False when no run of
    the experiment recorded its rewards (results written before they were)."""
    panels: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if r.get("rewards"):
            row = {"model": r["model_label"], "planner": r["planner"], "params": r["planner_params"],
                   "objective": r["objective"]}
            panels.setdefault(_label(row, ""), []).append(r)
    if not panels:
        return False
    plt = pyplot()

    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3 * rows), squeeze=False, sharey=True)
    for ax, (label, members) in zip(axes.flat, sorted(panels.items())):
        for m in sorted(members, key=lambda m: m["seed"]):
            ax.plot(m["rewards"], lw=0.8, label=f"seed {m['seed']}: {m['return']:.0f}")
        ax.set_title(textwrap.fill(label, 50), fontsize=8)
        ax.set_xlabel("control step")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    for ax in axes[:, 0]:
        ax.set_ylabel("reward")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(textwrap.fill(name, 30 * cols), fontsize=10)  # a one-panel figure is 5 in wide
    fig.tight_layout()
    save(fig, path, dpi=100)
    return True


def prediction_error_results(config: GridConfig, show_progress: bool = True) -> list[dict[str, Any]]:
    """Open-loop errors of every model named in the grid, computed once and cached under <out>
    (again when the model's file has changed since)."""
    if not config.prediction_error:
        return []
    from tdm_control.config import from_dict
    from tdm_control.dynamics import make_dynamics, model_digest
    from tdm_control.evaluation.prediction_error import PredictionErrorConfig, prediction_errors
    from tdm_control.tasks import make_task

    pe_config = from_dict(PredictionErrorConfig, config.prediction_error, where="prediction_error")
    task = make_task(config.task)
    models, repeats = {}, {}
    for exp in config.experiment_list():
        models.update(exp.models)
        repeats.update({label: exp.action_repeat for label in exp.models})
    folder = os.path.join(config.out, "prediction_error")
    os.makedirs(folder, exist_ok=True)
    out = []
    for label, model in models.items():
        path = os.path.join(folder, f"{label.replace(' ', '_').replace('/', '_')}.json")
        digest = model_digest(model)
        result = read_result(path)
        if result is not None and result.get("config") == json.loads(json.dumps(vars(pe_config))) \
                and result.get("model_path") == model and made_with(result, digest):
            out.append(result)
            continue
        dynamics = make_dynamics(model, task, action_repeat=repeats[label])
        try:
            result = prediction_errors(task, dynamics, pe_config, show_progress)
        finally:
            dynamics.close()
        result.update(label=label, model_path=model, model_sha256=digest)
        write_json(path, result)
        out.append(result)
    return out


def plot_filename(experiment: str) -> str:
    """A plain file name for an experiment's plot: 'return against horizon (fig. 4)' ->
    'return_against_horizon_fig_4.png'."""
    return re.sub(r"[^a-z0-9]+", "_", experiment.lower()).strip("_") + ".png"


def rewards_filename(experiment: str) -> str:
    """The file name of an experiment's reward-trace plot, beside its return plot."""
    return plot_filename(experiment).replace(".png", "_rewards.png")


def write_report(config: GridConfig, show_progress: bool = True) -> list[str]:
    """Writes report.md and the plots; returns the paths written."""
    results = load_results(config)
    # An experiment over several tasks labels each row with its task.
    rows = [r if r["task"] == config.task else {**r, "model": f"{r['model']} on {r['task']}"}
            for r in summarize(results)]
    written, traced = [], set()
    os.makedirs(config.out, exist_ok=True)
    for name in dict.fromkeys(r["experiment"] for r in rows):
        path = os.path.join(config.out, plot_filename(name))
        members = [r for r in results if r["experiment"] == name]
        title = f"{tasks_of(members, config)}: {name}"
        plot_experiment([r for r in rows if r["experiment"] == name], title, path)
        written.append(path)
        path = os.path.join(config.out, rewards_filename(name))
        if plot_reward_traces(members, title, path):
            written.append(path)
            traced.add(name)
    errors = prediction_error_results(config, show_progress)
    text = markdown(rows, config, frozenset(traced))
    if errors:
        from tdm_control.evaluation.prediction_error import plot_errors

        path = os.path.join(config.out, "prediction_error.png")
        learned = [e for e in errors if e["model_path"] != "mujoco"]  # the simulator's own error is ~1e-15
        plot_errors(learned, path, f"{config.task}: open-loop prediction error under Brownian actions")
        written.append(path)
        text += "\n## Open-loop prediction error (median RMS over start states)\n\n"
        ks = [k for k in (1, 5, 10, 25, 50, 100) if k <= config.prediction_error.get("horizon", 100)]
        text += "| model | " + " | ".join(f"k={k}" for k in ks) + " |\n|---|" + "---|" * len(ks) + "\n"
        for e in errors:
            text += f"| {e['label']} | " + " | ".join(f"{e['median_rms'][k - 1]:.3g}" for k in ks) + " |\n"
    path = os.path.join(config.out, "report.md")
    with open(path, "w") as f:
        f.write(text)
    written.append(path)
    return written
