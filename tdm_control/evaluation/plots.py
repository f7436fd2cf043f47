"""Matplotlib for scripts and CI: the non-interactive Agg backend, set in this one place."""

from __future__ import annotations

import os


def pyplot():
    """`matplotlib.pyplot` on the Agg backend (no display needed); imported only when a plot is made."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str, dpi: int = 120) -> None:
    """Writes `fig` to `path` (PNG), creating the folder, and frees it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def episode_rewards(path: str) -> list[list[float]]:
    """The reward of every control step of each episode, (episodes, steps), from a result JSON: the
    bridge's (`--result` of `tdm-control launch`) or an evaluation's (`tdm-control eval --out`)."""
    import json

    from tdm_control.config import ConfigError

    try:
        with open(path) as f:
            result = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"result file {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"result file {path} is not JSON: {e}") from None
    rewards = result.get("episode_rewards") if isinstance(result, dict) else None
    if not rewards:
        raise ConfigError(f"{path} records no per-step rewards ('episode_rewards'): write it with "
                          f"`tdm-control launch ... --result` or `tdm-control eval ... --out`")
    return rewards


def plot_rewards(curves: list[tuple[str, list[float]]], path: str, title: str, dt: float | None = None) -> None:
    """Reward of every control step, one line per (label, rewards); the x axis in s when `dt` (s per
    control step) is given, else in steps. Each label gets its return in the legend."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for label, rewards in curves:
        x = [i * dt for i in range(len(rewards))] if dt else list(range(len(rewards)))
        ax.plot(x, rewards, lw=1.0, label=f"{label} (return {sum(rewards):.1f})")
    ax.set_xlabel("time (s)" if dt else "control step")
    ax.set_ylabel("reward")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save(fig, path)
