"""Several learned models of one task planning as one: the mean of their predictions.

A planner that searches through one learned model finds the action sequences
whose predicted outcome is too good: the model's optimistic errors. Models
trained apart err apart, so where they disagree their mean is pulled back
toward what the data supports, and the search loses the incentive to chase one
model's mistake.

    make_dynamics("models/a.onnx+models/b.onnx", task)

The first member proposes actions when the planner asks for proposals; every
member then predicts where the same actions lead, and the planner scores the
mean predicted observations and rewards. Each plan costs one model call per
member.
"""

from __future__ import annotations

import numpy as np

from tdm_control.config import ConfigError
from tdm_control.dynamics.base import Dynamics
from tdm_control.history import History


class EnsembleDynamics(Dynamics):
    """The mean prediction of `members` (at least two, one action repeat)."""

    def __init__(self, members: list[Dynamics]) -> None:
        if len(members) < 2:
            raise ConfigError(f"an ensemble needs at least two models, got {len(members)}")
        repeats = {m.action_repeat for m in members}
        if len(repeats) > 1:
            raise ConfigError("ensemble members plan at different action repeats ("
                              + ", ".join(f"{m.name}: {m.action_repeat}" for m in members)
                              + "); combine models trained at one action repeat")
        self.members = members
        self.name = "+".join(m.name for m in members)
        self.history_steps = max(m.history_steps for m in members)
        self.proposes = members[0].proposes
        self.action_repeat = members[0].action_repeat
        self.observation_limit = min(m.observation_limit for m in members)
        self.warnings = tuple(w for m in members for w in m.warnings)
        self.notes = tuple(dict.fromkeys(n for m in members for n in m.notes))

    def rollout(self, history: History, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._mean(history, obs, actions, [])

    def rollout_with_proposals(self, history: History, obs: np.ndarray,
                               noise: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pred_obs, pred_reward, actions = self.members[0].rollout_with_proposals(history, obs, noise)
        return (*self._mean(history, obs, actions, [(pred_obs, pred_reward)]), actions)

    def _mean(self, history: History, obs: np.ndarray, actions: np.ndarray,
              done: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """Mean over members of (pred_obs (K, N, n), pred_reward (K, N)); `done` holds the predictions
        of the first members, already made, and the rest are asked for theirs."""
        predictions = done + [m.rollout(history, obs, actions) for m in self.members[len(done):]]
        return (np.mean([p[0] for p in predictions], axis=0),  # (K, N, n)
                np.mean([p[1] for p in predictions], axis=0))  # (K, N)

    def memory_bytes(self, samples: int, horizon: int) -> int:
        """Every member's predictions are held at once for the mean; members roll out one at a time."""
        return (sum(m.memory_bytes(samples, horizon) for m in self.members)
                + max(m.memory_bytes(samples, horizon) for m in self.members))

    def reset(self) -> None:
        for m in self.members:
            m.reset()

    def close(self) -> None:
        for m in self.members:
            m.close()
