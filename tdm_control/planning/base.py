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
        self._guess: np.ndarray | None = None  # (N, m) warm start given by continue_from
        self._fixed: np.ndarray | None = None  # (F, m) actions every candidate starts with

    @abc.abstractmethod
    def plan(self, obs: np.ndarray, history: History) -> np.ndarray:
        """Returns the action (m,) in [-1, 1] to apply now, given observation (n,) and the episode so far."""

    def reset(self) -> None:
        """Forgets the episode: warm starts, cached model state."""
        self.last = None
        self._guess = self._fixed = None
        self.dynamics.reset()

    def continue_from(self, guess: np.ndarray | None, fixed: np.ndarray | None) -> None:
        """Planning beside control (`tdm_control.nodes.async_core`): how the next plans start.

        Lockstep control never calls it; the settings hold until the next call or `reset`.

        Args:
          guess: (N, m) the warm start, replacing the planner's own one-step shift of its
            last plan: the previous plan shifted by the time that actually passed. None:
            the planner's own (nothing at an episode's start). Planners without a warm
            start (random shooting, proposals) ignore it.
          fixed: (F, m) actions that will have been played before the new plan is used;
            every candidate scored through `evaluate` starts with them (F <= N), so the
            plan is judged on what will really happen. Proposal-biased candidates are
            exempt: the model chooses their actions as it rolls them out.
        """
        self._guess = None if guess is None else np.array(guess, dtype=np.float64)
        self._fixed = None if fixed is None or not len(fixed) else np.array(fixed, dtype=np.float64)

    def _warm_start(self, previous: np.ndarray | None) -> np.ndarray | None:
        """The sequence (N, m) this plan starts from: the `continue_from` guess if one was given, else
        `previous` (N, m) shifted by one step with its last action repeated; None without either."""
        if self._guess is not None:
            return self._guess.copy()
        if previous is None:
            return None
        return np.concatenate([previous[1:], previous[-1:]], axis=0)

    def _fix(self, sequences: np.ndarray) -> np.ndarray:
        """`sequences` (..., N, m) with their first actions replaced, in place, by those `continue_from` fixed."""
        if self._fixed is not None:
            sequences[..., :len(self._fixed), :] = self._fixed[:sequences.shape[-2]]
        return sequences

    def sequence(self) -> np.ndarray | None:
        """The action sequence (N, m) the last `plan` commits to: its first row is the action it returned.
        None before the first plan."""
        return None if self.last is None else self.last.plan

    def score(self, pred_obs: np.ndarray, pred_reward: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Objective of predicted trajectories, pred_obs (K, N, n), pred_reward (K, N), actions (K, N, m)
        -> (K,) float64; a sequence the model predicted garbage for (non-finite) scores -inf, never picked."""
        returns = np.asarray(self.objective(pred_obs, pred_reward, actions), dtype=np.float64)
        return np.where(np.isfinite(returns), returns, -np.inf)

    def evaluate(self, obs: np.ndarray, history: History, candidates: np.ndarray) -> np.ndarray:
        """Scores candidates (K, N, m) in one batched model call; returns (K,).

        Actions fixed by `continue_from` are written into `candidates` (in place) first.
        """
        self._fix(candidates)
        pred_obs, pred_reward = self.dynamics.rollout(history, obs, candidates)
        return self.score(pred_obs, pred_reward, candidates)

    def evaluate_proposals(self, obs: np.ndarray, history: History,
                           noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Proposal-biased candidates: the model proposes each action and `noise` (K, N, m) perturbs it.
        Returns the actions it played (K, N, m) and their scores (K,), in one batched model call."""
        pred_obs, pred_reward, actions = self.dynamics.rollout_with_proposals(history, obs, noise)
        return actions, self.score(pred_obs, pred_reward, actions)
