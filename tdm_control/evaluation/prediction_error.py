"""Open-loop prediction error of a dynamics model against the true simulator (paper fig. 13).

From many start states, a Brownian action sequence of the kind the planner
samples is applied both in the simulator and in the model; the error of the
predicted observation k steps ahead is recorded for k = 1..N. Start states
come from the task's own initial-state distribution followed by a random
stretch of Brownian actions, so they cover more than the first frame.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from tqdm import tqdm

from tdm_control.dynamics.base import Dynamics
from tdm_control.evaluation.plots import pyplot, save
from tdm_control.history import History
from tdm_control.planning.noise import brownian_noise
from tdm_control.tasks import Task
from tdm_control.tasks.simulator import Simulator


@dataclasses.dataclass(frozen=True)
class PredictionErrorConfig:
    horizon: int = 100
    """N, model steps predicted open loop."""
    starts: int = 30
    """Start states (the paper: 30 runs)."""
    warmup_steps_max: int = 300
    """Each start state follows up to this many random control steps from an initial state."""
    noise_variance: float = 2.0
    """Brownian action noise variance over the horizon, as the planner samples it."""
    seed: int = 0


def true_future(simulator: Simulator, actions: np.ndarray, action_repeat: int = 1) -> np.ndarray:
    """Observations (N, n) the simulator reaches under actions (N, m), each held `action_repeat`
    control steps; its state is left unchanged."""
    task = simulator.task
    snapshot = simulator.save()
    out = np.empty((len(actions), task.observation_size))
    for k, a in enumerate(actions):
        for _ in range(action_repeat):
            simulator.step(task.action_to_torque(a))
        positions, velocities, _ = simulator.joint_state()
        out[k] = task.observation(positions, velocities)
    simulator.restore(snapshot)
    return out


def prediction_errors(task: Task, dynamics: Dynamics, config: PredictionErrorConfig,
                      show_progress: bool = True) -> dict[str, Any]:
    """Per-start RMS errors (starts, N) over all observation dims and over positions only.

    'Positions only' leaves out the velocity block, as the paper's figure 13 does.
    """
    rng = np.random.default_rng(config.seed)
    n, m = task.observation_size, task.action_size
    velocity = np.zeros(n, dtype=bool)
    offset = 0
    for field in task.observation_layout:
        if field.name == "velocity":
            velocity[offset:offset + field.size] = True
        offset += field.size
    rms_all = np.empty((config.starts, config.horizon))
    rms_pos = np.empty((config.starts, config.horizon))
    repeat = dynamics.action_repeat  # control steps per model step
    for s in tqdm(range(config.starts), disable=not show_progress, desc=f"prediction error {task.name}"):
        simulator = Simulator(task, seed=int(rng.integers(2**31 - 1)))
        simulator.reset()
        history = History(dynamics.history_steps)
        warmup = int(rng.integers(0, config.warmup_steps_max + 1)) // repeat  # model steps
        walk = brownian_noise(rng, 1, max(warmup, 1), m, config.noise_variance)[0]
        reward = 0.0
        for t in range(warmup):
            positions, velocities, _ = simulator.joint_state()
            history.append(task.observation(positions, velocities), reward, walk[t])
            for _ in range(repeat):
                reward = simulator.step(task.action_to_torque(walk[t]))
        history.current_reward = reward
        positions, velocities, _ = simulator.joint_state()
        obs = task.observation(positions, velocities)
        actions = brownian_noise(rng, 1, config.horizon, m, config.noise_variance)  # (1, N, m)
        truth = true_future(simulator, actions[0], repeat)  # (N, n)
        predicted, _ = dynamics.rollout(history, obs, actions)  # (1, N, n)
        error = predicted[0] - truth
        rms_all[s] = np.sqrt(np.mean(error**2, axis=1))
        rms_pos[s] = np.sqrt(np.mean(error[:, ~velocity] ** 2, axis=1)) if (~velocity).any() else rms_all[s]
    return {
        "config": dataclasses.asdict(config),
        "task": task.name,
        "model": getattr(dynamics, "path", dynamics.name),
        "action_repeat": dynamics.action_repeat,
        "median_rms": np.median(rms_all, axis=0).tolist(),
        "median_rms_positions": np.median(rms_pos, axis=0).tolist(),
        "quartiles_rms": np.percentile(rms_all, [25, 75], axis=0).tolist(),
        "quartiles_rms_positions": np.percentile(rms_pos, [25, 75], axis=0).tolist(),
    }


def plot_errors(results: list[dict[str, Any]], path: str, title: str) -> None:
    """Median RMS error against steps ahead, one line per model, quartiles shaded."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for result in results:
        label = result.get("label", result["model"])
        for ax, key in zip(axes, ("rms_positions", "rms")):
            median = np.asarray(result[f"median_{key}"])
            lo, hi = np.asarray(result[f"quartiles_{key}"])
            k = np.arange(1, len(median) + 1)
            line, = ax.plot(k, median, label=label)
            ax.fill_between(k, lo, hi, color=line.get_color(), alpha=0.2)
    axes[0].set_title("positions (velocities left out, as paper fig. 13)")
    axes[1].set_title("all observation dimensions")
    for ax in axes:
        ax.set_xlabel("steps ahead k")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("RMS error (median over start states)")
    axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path, dpi=120)
