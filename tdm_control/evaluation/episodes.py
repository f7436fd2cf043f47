"""Closed-loop evaluation: full episodes of MPC on the simulator, with returns and planning latency."""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from tdm_control.controller import Controller, build_controller
from tdm_control.files import write_json
from tdm_control.planning import make_objective, planner_config
from tdm_control.tasks import make_task
from tdm_control.tasks.simulator import Simulator


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    task: str = "cartpole_swingup"
    """Registered task name."""
    model: str = "mujoco"
    """Dynamics model: 'mujoco' (ground truth) or a path to an exported .onnx model."""
    planner: str = "random_shooting"
    """Registered planner name."""
    planner_params: dict = dataclasses.field(default_factory=dict)
    """Planner config keys (samples, horizon, ...)."""
    objective: str = "observation"
    """'observation': task reward of predicted observations; 'predicted': the model's reward predictions."""
    episodes: int = 4
    """Episodes to run; episode i starts from the initial state drawn with seed + i."""
    steps: int | None = None
    """Control steps per episode; None for the task's full episode (1000)."""
    seed: int = 0
    """Seeds the initial states and the planner's noise."""
    action_repeat: int = 0
    """Control steps each planned action is held: 0 takes the model's own (1 for 'mujoco');
    an exported model's own value cannot be changed."""


def reward_trace(rewards: np.ndarray) -> list[float]:
    """Per-step rewards for a result JSON, rounded to 1e-4 to keep files small."""
    return np.round(np.asarray(rewards, dtype=np.float64), 4).tolist()


def standard_error(returns: np.ndarray) -> float:
    """One standard error of the mean of episode returns (0 for a single episode)."""
    return float(returns.std(ddof=1) / np.sqrt(len(returns))) if len(returns) > 1 else 0.0


def summarize(returns: list[float], latencies: np.ndarray) -> dict[str, Any]:
    """Mean return with a 68% interval (mean ± one standard error) and latency percentiles (s)."""
    r = np.asarray(returns, dtype=np.float64)
    sem = standard_error(r)
    return {
        "mean_return": float(r.mean()),
        "return_interval_68": [float(r.mean() - sem), float(r.mean() + sem)],
        "returns": r.tolist(),
        "latency_median_s": float(np.median(latencies)) if latencies.size else 0.0,
        "latency_p95_s": float(np.percentile(latencies, 95)) if latencies.size else 0.0,
    }


def run_episode(simulator: Simulator, controller: Controller, steps: int,
                progress: tqdm | None = None, video: Any = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Runs one episode from a fresh initial state (filmed by `video`, an EpisodeVideo, if given).

    Returns:
      the episode return, the latency of every plan in s (one per step, or one
      per `action_repeat` steps when the model's step spans several), and the
      reward of every control step (steps,).
    """
    simulator.reset()
    controller.reset()
    if video is not None:
        video.begin_episode(simulator.physics.data.ptr)
    latencies, rewards = [], []
    for t in range(steps):
        positions, velocities, _ = simulator.joint_state()
        _, torque = controller.act(positions, velocities)
        rewards.append(simulator.step(torque))
        if video is not None:
            video.step(simulator.physics.data.ptr, t + 1, rewards[-1])
        if controller.planned:
            latencies.append(controller.last_latency)
        if progress is not None:
            progress.update(1)
            if t % 20 == 0:
                progress.set_postfix(ret=f"{simulator.episode_return:.1f}")
    return simulator.episode_return, np.array(latencies), np.array(rewards)


def evaluate(config: EvalConfig, show_progress: bool = True, video: Any = None) -> dict[str, Any]:
    """Runs `config.episodes` full episodes and returns a JSON-serialisable result.

    `video` (a VideoConfig) films every episode into one file; the result's "video" names it.
    """
    task = make_task(config.task)
    planner_config(config.planner, config.planner_params)  # fail before any work
    make_objective(config.objective, task)
    steps = config.steps or task.episode_steps
    returns, latencies, traces = [], [], []
    repeat = 1
    started = time.time()
    film = None
    if video is not None:
        from tdm_control.evaluation.video import EpisodeVideo

        film = EpisodeVideo(video, task.model, task.control_timestep)  # fails before any planning
    with tqdm(total=steps * config.episodes, disable=not show_progress, unit="step",
              desc=f"{config.task} {config.planner}") as bar:
        for episode in range(config.episodes):
            controller = build_controller(config, task, episode)
            repeat = controller.action_repeat
            simulator = Simulator(task, seed=config.seed + episode)
            try:
                episode_return, lat, rewards = run_episode(simulator, controller, steps, bar, film)
            finally:
                controller.planner.dynamics.close()
            returns.append(episode_return)
            latencies.append(lat)
            traces.append(reward_trace(rewards))
            bar.write(f"episode {episode}: return {episode_return:.1f}")
    result = {
        "config": dataclasses.asdict(config),
        "planner_config": dataclasses.asdict(planner_config(config.planner, config.planner_params)),
        "steps": steps,
        "action_repeat": repeat,
        **summarize(returns, np.concatenate(latencies)),
        "episode_rewards": traces,  # (episodes, steps): the reward of every control step
        "wall_time_s": time.time() - started,
        **({"video": film.close()} if film is not None else {}),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count()},
    }
    return result


def write_result(result: dict[str, Any], path: str) -> None:
    """Writes a result as indented JSON, creating the folder."""
    write_json(path, result)
