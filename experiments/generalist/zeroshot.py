"""Zero-shot on held-out variants (issue 19, paper fig. 7): one command, resumable.

    .venv/bin/python experiments/generalist/zeroshot.py --config experiments/generalist/config/zeroshot.yaml
    .venv/bin/python experiments/generalist/zeroshot.py --config ... --report   # tables and plot only

Runs the evaluation grid of the config (its experiments list the held-out variants as `tasks`), writes
the grid's own report, then <out>/zeroshot.md and <out>/zeroshot.png: per variant, the return of each
(model, planner) row as bars, the average, how many variants each planner beats the behaviour-cloning
policy on, and each row's average as a share of the ground truth's.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

GROUND_TRUTH = "mujoco"
BC_EXPERIMENT = "TDM as a behaviour-cloning policy"


def row_label(r: dict) -> str:
    return f"{r['model']} / {r['planner']}" if r["experiment"] != BC_EXPERIMENT else f"{r['model']} / BC policy"


def table(rows: list[dict]) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Variants in order, and label -> variant -> mean return over seeds."""
    variants = list(dict.fromkeys(r["task"] for r in rows))
    returns: dict[str, dict[str, float]] = {}
    for r in rows:
        returns.setdefault(row_label(r), {})[r["task"]] = r["mean"]
    return variants, returns


def report(out: str, rows: list[dict], steps: int) -> str:
    from tdm_control.evaluation.plots import pyplot, save

    variants, returns = table(rows)
    labels = list(returns)
    truth = next((lb for lb in labels if lb.startswith("ground truth")), None)
    bc = next((lb for lb in labels if lb.endswith("BC policy")), None)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(1, len(labels))
    x = np.arange(len(variants) + 1)
    for i, lb in enumerate(labels):
        values = [returns[lb].get(v, np.nan) for v in variants]
        ax.bar(x + i * width, values + [np.nanmean(values)], width, label=lb)
    ax.set_xticks(x + width * (len(labels) - 1) / 2,
                  [v.split("~")[-1] for v in variants] + ["average"], fontsize=8)
    ax.set_ylabel(f"return ({steps}-step episode)")
    ax.set_title("zero-shot on held-out cartpole variants")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    ax.grid(axis="y", alpha=0.3)
    save(fig, os.path.join(out, "zeroshot.png"))
    lines = ["# Zero-shot on held-out variants", "",
             "| variant | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for v in variants:
        lines.append(f"| {v} | " + " | ".join(f"{returns[lb].get(v, float('nan')):.1f}" for lb in labels) + " |")
    lines.append("| **average** | " + " | ".join(f"**{np.mean(list(returns[lb].values())):.1f}**"
                                                 for lb in labels) + " |")
    lines.append("")
    for lb in labels:
        if lb in (truth, bc):
            continue
        common = [v for v in variants if v in returns[lb] and bc and v in returns[bc]]
        wins = sum(returns[lb][v] > returns[bc][v] for v in common)
        text = f"- {lb}: beats the BC policy on {wins} of {len(common)} variants"
        if truth:
            shared = [v for v in variants if v in returns[lb] and v in returns[truth]]
            share = np.mean([returns[lb][v] for v in shared]) / np.mean([returns[truth][v] for v in shared])
            ratios = [returns[lb][v] / returns[truth][v] for v in shared]
            text += (f"; its average return is {100 * share:.0f}% of the ground truth's "
                     f"(mean of per-variant ratios {100 * np.mean(ratios):.0f}%)")
        lines.append(text)
    lines += ["", "![zero-shot](zeroshot.png)", ""]
    text = "\n".join(lines)
    with open(os.path.join(out, "zeroshot.md"), "w") as f:
        f.write(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--report", action="store_true", help="tables and plot from the runs on disk only")
    args = parser.parse_args(argv)
    from tdm_control.evaluation.grid import load_grid, load_results, run_grid, summarize
    from tdm_control.evaluation.grid_report import write_report

    config = load_grid(args.config)
    if not args.report:
        run_grid(config, show_progress=False)
    write_report(config, show_progress=False)
    print(report(config.out, summarize(load_results(config)), config.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
