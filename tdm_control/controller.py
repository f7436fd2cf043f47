"""Joint state in, torque out: the planning loop's core, shared by evaluation and the planner node."""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from tdm_control.dynamics import Dynamics, make_dynamics
from tdm_control.exploration import EXPLORATION_STREAM, MPC, Explorer, exploration_config
from tdm_control.history import History
from tdm_control.planning import PlanInfo, Planner, make_objective, make_planner
from tdm_control.tasks import Task


class Controller:
    """Turns joint states into torque commands through a task and a planner.

    It builds the task observation, keeps the episode history the dynamics model
    conditions on (the reward of each step is the task reward of the observation
    it reached), plans, and converts the action to joint torques. A model whose
    step spans several control steps (`action_repeat` > 1) is planned with every
    `action_repeat` control steps; in between, the chosen action is held.
    """

    def __init__(self, task: Task, planner: Planner, history_steps: int | None = None,
                 explorer: Explorer | None = None) -> None:
        """`explorer`: the data policy (tdm_control.exploration) that replaces some plans by Brownian
        segments and perturbs the others, for recording exploratory data; None plans every step."""
        self.task = task
        self.planner = planner
        self.explorer = explorer
        self._decisions = 0  # actions chosen this episode (the explorer's clock)
        steps = planner.dynamics.history_steps if history_steps is None else history_steps
        self.history = History(steps)
        self.action_repeat = planner.dynamics.action_repeat
        self._previous_action: np.ndarray | None = None
        self._held_for = 0  # control steps the previous action has been applied
        self.last_latency = 0.0
        """Seconds the last `act` spent planning (0 when it held the previous action)."""
        self.planned = False
        """Whether the last `act` planned (False when it held the previous action)."""

    def reset(self) -> None:
        """Starts a new episode."""
        self.history.clear()
        self.planner.reset()
        self._previous_action = None
        self._held_for = 0
        self._decisions = 0

    @property
    def last_plan(self) -> PlanInfo | None:
        return self.planner.last

    @property
    def exploring(self) -> bool:
        """Whether the action in play comes from an exploratory walk, not from a plan."""
        return self.explorer is not None and self.explorer.behaviour != MPC

    def act(self, positions: np.ndarray, velocities: np.ndarray,
            obs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Plans one step.

        Args:
          positions: (J,) joint positions in `task.joint_names` order (m or rad).
          velocities: (J,) joint velocities (m/s or rad/s).
          obs: (n,) `task.observation(positions, velocities)` when the caller has built it already
            (the planner node's check before planning does); None builds it here.

        Returns:
          action (m,) in [-1, 1] and torque (m,) in N·m (N for slide joints).
        """
        if self._previous_action is not None and self._held_for < self.action_repeat:
            self._held_for += 1
            self.last_latency, self.planned = 0.0, False
            return self._previous_action, self.task.action_to_torque(self._previous_action)
        if obs is None:
            obs = self.task.observation(positions, velocities)  # (n,)
        if self._previous_action is None:
            reward = 0.0
        else:
            reward = float(self.task.reward(obs, self._previous_action))
        self.history.current_reward = reward
        start = time.perf_counter()
        if self.explorer is None:
            action = np.clip(self.planner.plan(obs, self.history), -1.0, 1.0)  # (m,)
        else:
            action = self.explorer.act(self._decisions, lambda: self.planner.plan(obs, self.history))
        self._decisions += 1
        self.last_latency = time.perf_counter() - start
        self.history.append(obs, reward, action)
        self._previous_action = action
        self._held_for = 1
        self.planned = not self.exploring  # a Brownian segment does not plan
        return action, self.task.action_to_torque(action)


class ControllerSpec(Protocol):
    """What a controller is built from: the fields shared by `EvalConfig` and `PlannerNodeConfig`."""

    model: str
    planner: str
    planner_params: dict
    objective: str
    seed: int
    action_repeat: int


def episode_rng(seed: int, episode: int) -> np.random.Generator:
    """The planner's generator for one episode, independent across episodes."""
    return np.random.default_rng([seed, episode])


def build_controller(spec: ControllerSpec, task: Task, episode: int, dynamics: Dynamics | None = None) -> Controller:
    """The controller for one episode: model, objective and a planner seeded for that episode.

    In-process evaluation, grids, audits and the planner node all build their controller here, so
    the same settings plan identically everywhere. `dynamics` reuses a model already loaded for
    `spec.model` (the planner resets it with each episode); None loads it.
    """
    objective = make_objective(spec.objective, task)  # fails before a model is loaded
    if dynamics is None:
        dynamics = make_dynamics(spec.model, task, action_repeat=spec.action_repeat)
    planner = make_planner(spec.planner, dynamics, objective, task.action_size,
                           episode_rng(spec.seed, episode), spec.planner_params)
    exploration = exploration_config(getattr(spec, "exploration", {}))  # the planner node's; evaluation has none
    explorer = None
    if exploration is not None:
        explorer = Explorer(exploration, np.random.default_rng([spec.seed, episode, EXPLORATION_STREAM]),
                            task.action_size)
    return Controller(task, planner, explorer=explorer)
