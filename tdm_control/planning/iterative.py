"""Iterative sampling planners: the cross-entropy method (CEM) and MPPI, warm-started.

Both refine a Gaussian over action sequences (mean (N, m), std (N, m)) over a
few iterations of K samples each, and keep the mean, shifted by one step, for
the next control step. Where the dynamics model proposes actions (a TDM read
as a behaviour-cloning policy), a share of the first iteration's samples are
proposal-biased rollouts instead of Gaussian draws.
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np

from tdm_control.config import check
from tdm_control.dynamics.base import Dynamics
from tdm_control.history import History
from tdm_control.planning.base import PlanInfo, Planner
from tdm_control.planning.noise import brownian_noise
from tdm_control.planning.objectives import Objective
from tdm_control.planning.proposal import proposal_noise, require_proposals


@dataclasses.dataclass(frozen=True)
class IterativeConfig:
    samples: int = 64
    """K, action sequences per iteration."""
    horizon: int = 50
    """N, model steps each sequence looks ahead (each holds its action for the model's action_repeat control steps)."""
    iterations: int = 4
    """Refinements per plan; the model-call budget is samples x iterations."""
    init_std: float = 0.6
    """Std of the sampling distribution at an episode's start and for new tail steps."""
    min_std: float = 0.05
    """Floor on the std, so the search never collapses completely."""
    random_share: float = 0.25
    """Share of samples drawn as fresh Brownian walks covering the box, every iteration."""
    proposal_share: float = 0.0
    """Share of the first iteration's samples that follow the model's own proposals."""
    proposal_variance: float = 0.1
    """Brownian noise variance (over the horizon) added to proposed actions."""

    def __post_init__(self) -> None:
        for name in ("samples", "horizon", "iterations"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(0 < self.min_std <= self.init_std, "min_std", "must be in (0, init_std]")
        check(0 <= self.random_share < 1, "random_share", f"must be in [0, 1), got {self.random_share}")
        check(0 <= self.proposal_share < 1, "proposal_share", f"must be in [0, 1), got {self.proposal_share}")
        check(self.random_share + self.proposal_share < 1, "proposal_share",
              "random_share + proposal_share must leave room for Gaussian samples")
        check(self.proposal_variance >= 0, "proposal_variance", "must be >= 0")


@dataclasses.dataclass(frozen=True)
class CEMConfig(IterativeConfig):
    elites: int = 8
    """Best samples the distribution is refitted to."""
    momentum: float = 0.1
    """Share of the old mean and std kept at each refit."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(1 <= self.elites <= self.samples, "elites", f"must be in [1, samples], got {self.elites}")
        check(0 <= self.momentum < 1, "momentum", f"must be in [0, 1), got {self.momentum}")


@dataclasses.dataclass(frozen=True)
class MPPIConfig(IterativeConfig):
    temperature: float = 0.5
    """lambda: weights are softmax(return / lambda); lower is greedier."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")


class IterativePlanner(Planner, abc.ABC):
    """Shared sampling, evaluation and warm start; subclasses say how to refit."""

    Config = IterativeConfig

    def __init__(self, dynamics: Dynamics, objective: Objective, action_size: int,
                 rng: np.random.Generator, config: IterativeConfig) -> None:
        super().__init__(dynamics, objective, action_size, rng)
        self.config = config
        if config.proposal_share > 0:
            require_proposals(dynamics, "proposal_share > 0")
        self._mean: np.ndarray | None = None  # (N, m)

    def reset(self) -> None:
        super().reset()
        self._mean = None

    def _initial(self) -> tuple[np.ndarray, np.ndarray]:
        c, m = self.config, self.action_size
        std = np.full((c.horizon, m), c.init_std)
        warm = self._warm_start(self._mean)  # the last mean shifted (N, m), or None
        return self._fix(np.zeros((c.horizon, m)) if warm is None else warm), std

    def _sample(self, mean: np.ndarray, std: np.ndarray, count: int) -> np.ndarray:
        c = self.config
        fresh = int(round(c.random_share * count))
        gaussian = mean + std * self.rng.normal(size=(count - fresh, c.horizon, self.action_size))
        walks = brownian_noise(self.rng, fresh, c.horizon, self.action_size)
        return np.clip(np.concatenate([mean[None], gaussian[1:], walks]), -1.0, 1.0)  # (count, N, m)

    @abc.abstractmethod
    def _refit(self, mean: np.ndarray, std: np.ndarray, candidates: np.ndarray,
               returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New mean and std (N, m) from candidates (K, N, m) and their returns (K,)."""

    def plan(self, obs: np.ndarray, history: History) -> np.ndarray:
        c = self.config
        mean, std = self._initial()
        best_return, best_plan, calls, seen = -np.inf, mean, 0, 0
        for iteration in range(c.iterations):
            count = c.samples
            proposed = np.zeros((0, c.horizon, self.action_size))
            proposed_returns = np.zeros(0)
            if iteration == 0 and c.proposal_share > 0:
                proposed, proposed_returns = self._proposals(obs, history, int(round(c.proposal_share * c.samples)))
                count -= len(proposed)
                calls += 1
            candidates = self._sample(mean, std, count)
            returns = self.evaluate(obs, history, candidates)
            calls += 1
            candidates = np.concatenate([candidates, proposed])
            returns = np.concatenate([returns, proposed_returns])
            seen += len(candidates)
            top = int(np.argmax(returns))
            if returns[top] > best_return:
                best_return, best_plan = float(returns[top]), candidates[top].copy()
            mean, std = self._refit(mean, std, candidates, returns)
            std = np.maximum(std, c.min_std)
        self._mean = mean
        self.last = PlanInfo(best_return, best_plan, calls, seen)
        return np.clip(mean[0], -1.0, 1.0)

    def sequence(self) -> np.ndarray | None:
        """The refined mean (N, m), clipped: its first row is the action `plan` returned."""
        return None if self._mean is None else np.clip(self._mean, -1.0, 1.0)

    def _proposals(self, obs: np.ndarray, history: History, count: int):
        """Proposal-biased sequences and their returns, from a model that proposes actions."""
        noise = proposal_noise(self.rng, count, self.config.horizon, self.action_size,
                               self.config.proposal_variance)
        return self.evaluate_proposals(obs, history, noise)


class CEM(IterativePlanner):
    """Cross-entropy method: refit the Gaussian to the `elites` best samples."""

    Config = CEMConfig

    def _refit(self, mean, std, candidates, returns):
        c = self.config
        elite = candidates[np.argsort(returns)[-c.elites:]]  # (E, N, m)
        new_mean, new_std = elite.mean(axis=0), elite.std(axis=0)
        return (c.momentum * mean + (1 - c.momentum) * new_mean,
                c.momentum * std + (1 - c.momentum) * new_std)


class MPPI(IterativePlanner):
    """Model-predictive path integral: the mean becomes the return-weighted average of the samples."""

    Config = MPPIConfig

    def _refit(self, mean, std, candidates, returns):
        finite = np.isfinite(returns)
        if not finite.any():
            return mean, std
        scores = np.where(finite, returns, -np.inf)
        weights = np.exp((scores - scores.max()) / self.config.temperature)
        weights /= weights.sum()  # (K,)
        new_mean = np.einsum("k,knm->nm", weights, candidates)
        new_std = np.sqrt(np.einsum("k,knm->nm", weights, (candidates - new_mean) ** 2))
        return new_mean, new_std
