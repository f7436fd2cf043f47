"""What a planner is, and how it scores candidate sequences through a model and an objective."""

from __future__ import annotations

import abc
import dataclasses

import numpy as np

from tdm_control.dynamics.base import Dynamics
from tdm_control.history import History
from tdm_control.planning.objectives import Objective


@dataclasses.dataclass
class PlanInfo:
    """What the last `plan` call found, for logs and topics."""

    predicted_return: float
    """Objective value of the chosen sequence (sum of rewards over the horizon)."""
    plan: np.ndarray
    """(N, m) the chosen action sequence; its first row was returned."""
    model_calls: int
    """Batched `Dynamics.rollout` calls made."""
    candidates: int
    """Action sequences evaluated in all, over all calls."""


class Planner(abc.ABC):
    """Chooses the next action by optimising action sequences through a dynamics model.

    Planners see a `Dynamics` model, an `Objective`, the action size and a
    seeded generator; never a task.
    """

    def __init__(self, dynamics: Dynamics, objective: Objective, action_size: int,
                 rng: np.random.Generator) -> None:
        self.dynamics = dynamics
        self.objective = objective
        self.action_size = action_size
        self.rng = rng
        self.last: PlanInfo | None = None

    @abc.abstractmethod
    def plan(self, obs: np.ndarray, history: History) -> np.ndarray:
        """Returns the action (m,) in [-1, 1] to apply now, given observation (n,) and the episode so far."""

    def reset(self) -> None:
        """Forgets the episode: warm starts, cached model state."""
        self.last = None
        self.dynamics.reset()

    def score(self, pred_obs: np.ndarray, pred_reward: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Objective of predicted trajectories, pred_obs (K, N, n), pred_reward (K, N), actions (K, N, m)
        -> (K,) float64; a sequence the model predicted garbage for (non-finite) scores -inf, never picked."""
        returns = np.asarray(self.objective(pred_obs, pred_reward, actions), dtype=np.float64)
        return np.where(np.isfinite(returns), returns, -np.inf)

    def evaluate(self, obs: np.ndarray, history: History, candidates: np.ndarray) -> np.ndarray:
        """Scores candidates (K, N, m) in one batched model call; returns (K,)."""
        pred_obs, pred_reward = self.dynamics.rollout(history, obs, candidates)
        return self.score(pred_obs, pred_reward, candidates)

    def evaluate_proposals(self, obs: np.ndarray, history: History,
                           noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Proposal-biased candidates: the model proposes each action and `noise` (K, N, m) perturbs it.
        Returns the actions it played (K, N, m) and their scores (K,), in one batched model call."""
        pred_obs, pred_reward, actions = self.dynamics.rollout_with_proposals(history, obs, noise)
        return actions, self.score(pred_obs, pred_reward, actions)
