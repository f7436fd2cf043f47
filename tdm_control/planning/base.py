"""What a planner is, and the objectives it maximises."""

from __future__ import annotations

import abc
import dataclasses
from typing import Callable

import numpy as np

from tdm_control.dynamics.base import Dynamics
from tdm_control.history import History

RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""reward(obs (..., n), action (..., m)) -> (...,): a task's reward of an observation."""


class Objective(abc.ABC):
    """Scores predicted trajectories; the planner keeps the candidate with the highest score."""

    name: str

    @abc.abstractmethod
    def __call__(self, pred_obs: np.ndarray, pred_reward: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """pred_obs (K, N, n), pred_reward (K, N), actions (K, N, m) -> returns (K,)."""


class ObservationReward(Objective):
    """Sum over the horizon of the task reward of each predicted observation (paper eq. 5)."""

    name = "observation"

    def __init__(self, reward_fn: RewardFn) -> None:
        self.reward_fn = reward_fn

    def __call__(self, pred_obs, pred_reward, actions):
        return self.reward_fn(pred_obs, actions).sum(axis=1)  # (K, N) -> (K,)


class PredictedReward(Objective):
    """Sum over the horizon of the model's own predicted rewards (paper eq. 6)."""

    name = "predicted"

    def __call__(self, pred_obs, pred_reward, actions):
        return pred_reward.sum(axis=1)  # (K, N) -> (K,)


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

    def evaluate(self, obs: np.ndarray, history: History, candidates: np.ndarray) -> np.ndarray:
        """Scores candidates (K, N, m) in one batched model call; returns (K,)."""
        pred_obs, pred_reward = self.dynamics.rollout(history, obs, candidates)
        returns = np.asarray(self.objective(pred_obs, pred_reward, candidates), dtype=np.float64)
        # A model may predict garbage for some sequence; never pick it.
        return np.where(np.isfinite(returns), returns, -np.inf)
