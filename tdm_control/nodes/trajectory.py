"""A plan as the executor reads it: actions indexed by time, and the warm start shifted by the time that passed.

In async execution (`tdm_control.nodes.async_core`) a plan is not one action
answering one state but a trajectory: the planner's chosen sequence, each
action held for one model step (the model's action repeat x the task's control
timestep), starting at the time of the state it was planned from. The executor
asks it for the action at the time of each control tick. Times are the node's
clock in integer nanoseconds (the simulation's /clock under use_sim_time), so
whole model steps divide exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """A time-indexed plan: action i is held from `stamp_ns + i * step_ns` until the next one."""

    actions: np.ndarray
    """(N, m) in [-1, 1], one per model step."""
    torques: np.ndarray
    """(N, m) the same actions as joint torques (N·m; N for slide joints), actuator order."""
    stamp_ns: int
    """Time of the joint state it was planned from (ns, node clock): action 0 starts then."""
    step_ns: int
    """How long each action is held (ns): the model's action repeat x the control timestep."""
    predicted_return: float = float("nan")
    """The objective value the planner predicted for it."""
    latency_s: float = 0.0
    """Wall-clock seconds it took to plan."""

    def __post_init__(self) -> None:
        if self.actions.ndim != 2 or self.actions.shape != self.torques.shape or not len(self.actions):
            raise ValueError(f"actions and torques must both be (N, m) with N >= 1, got {self.actions.shape} "
                             f"and {self.torques.shape}")
        if self.step_ns <= 0:
            raise ValueError(f"step_ns must be > 0, got {self.step_ns}")

    @property
    def horizon(self) -> int:
        """N, the number of model steps it covers."""
        return len(self.actions)

    @property
    def end_ns(self) -> int:
        """When its last action ends (ns): from then on it has nothing to say."""
        return self.stamp_ns + self.horizon * self.step_ns

    def index_at(self, t_ns: int) -> int | None:
        """The model step that holds at time `t_ns`, or None at or past the end.

        A time before the stamp (a clock a little behind the state's) gets the first action.
        """
        if t_ns >= self.end_ns:
            return None
        return max(0, (t_ns - self.stamp_ns) // self.step_ns)

    def action_at(self, t_ns: int) -> np.ndarray | None:
        """The action (m,) in [-1, 1] for time `t_ns`, or None past the end."""
        i = self.index_at(t_ns)
        return None if i is None else self.actions[i]

    def torque_at(self, t_ns: int) -> np.ndarray | None:
        """The torques (m,) in actuator order for time `t_ns`, or None past the end."""
        i = self.index_at(t_ns)
        return None if i is None else self.torques[i]

    def age_s(self, t_ns: int) -> float:
        """Seconds from the state it was planned from to `t_ns`."""
        return (t_ns - self.stamp_ns) * 1e-9


def shift(plan: Trajectory, elapsed_s: float) -> np.ndarray:
    """The warm start for a plan made `elapsed_s` after `plan`'s state: its actions (N, m) from then on.

    The shift is the number of whole model steps that elapsed, rounded down: the
    new plan's first action then is the one `plan` holds at the new state's time,
    which is the action the executor is playing at that moment (`index_at` rounds
    the same way); rounding up would drop an action still being played. Past its
    end the last action is repeated, as the lockstep warm start does. A negative
    elapsed time (never expected) shifts nothing.

    Args:
      plan: the previous plan.
      elapsed_s: seconds from `plan.stamp_ns` to the new state's stamp.

    Returns:
      (N, m) actions, N = plan.horizon.
    """
    steps = max(0, round(elapsed_s * 1e9) // plan.step_ns)
    n = plan.horizon
    kept = plan.actions[min(steps, n - 1):]  # (N - steps, m), at least the last action
    return np.concatenate([kept, np.repeat(plan.actions[-1:], n - len(kept), axis=0)], axis=0)


def fit_horizon(actions: np.ndarray, horizon: int) -> np.ndarray:
    """`actions` (N, m) cut to, or extended with their last action to, (horizon, m): a warm start for a
    planner whose horizon changed at run time (`ros2 param set ... planner_params.horizon`)."""
    if len(actions) >= horizon:
        return actions[:horizon]
    return np.concatenate([actions, np.repeat(actions[-1:], horizon - len(actions), axis=0)], axis=0)
