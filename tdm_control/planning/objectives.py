"""Objectives a planner maximises, with their one registry: `make_objective('observation', task)`."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Callable

import numpy as np

from tdm_control.config import ConfigError

if TYPE_CHECKING:
    from tdm_control.tasks import Task

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


OBJECTIVES = {"observation": ObservationReward, "predicted": PredictedReward}
"""Every objective by name, registered in this one place."""


def make_objective(name: str, task: Task) -> Objective:
    """The objective `name` for `task`; an unknown name is a ConfigError naming the choices."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; choose one of: {', '.join(OBJECTIVES)}")
    return ObservationReward(task.reward) if name == "observation" else PredictedReward()
