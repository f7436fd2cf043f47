"""Random-shooting MPC over Brownian action noise, cold and warm-started."""

from __future__ import annotations

import dataclasses

import numpy as np

from tdm_control.config import check
from tdm_control.dynamics.base import Dynamics
from tdm_control.history import History
from tdm_control.planning.base import PlanInfo, Planner
from tdm_control.planning.noise import brownian_noise
from tdm_control.planning.objectives import Objective


@dataclasses.dataclass(frozen=True)
class RandomShootingConfig:
    samples: int = 128
    """K, candidate action sequences per step (the paper: 128 for cartpole, 64 for walker)."""
    horizon: int = 50
    """N, model steps each candidate looks ahead (each holds its action for the model's action_repeat control steps)."""
    noise_variance: float = 2.0
    """Variance of the Brownian walk over the horizon (the paper's 2)."""

    def __post_init__(self) -> None:
        check(self.samples >= 1, "samples", f"must be >= 1, got {self.samples}")
        check(self.horizon >= 1, "horizon", f"must be >= 1, got {self.horizon}")
        check(self.noise_variance >= 0, "noise_variance", f"must be >= 0, got {self.noise_variance}")


class RandomShooting(Planner):
    """Samples K Brownian sequences, rolls all out in one model call, applies the best one's first action.

    Nothing is kept between steps: each plan starts from scratch.
    """

    Config = RandomShootingConfig

    def __init__(self, dynamics: Dynamics, objective: Objective, action_size: int,
                 rng: np.random.Generator, config: RandomShootingConfig = RandomShootingConfig()) -> None:
        super().__init__(dynamics, objective, action_size, rng)
        self.config = config

    def sample(self) -> np.ndarray:
        """Candidate sequences (K, N, m) for this step."""
        c = self.config
        return brownian_noise(self.rng, c.samples, c.horizon, self.action_size, c.noise_variance)

    def plan(self, obs: np.ndarray, history: History) -> np.ndarray:
        candidates = self.sample()  # (K, N, m)
        returns = self.evaluate(obs, history, candidates)  # (K,)
        best = int(np.argmax(returns))
        self.last = PlanInfo(float(returns[best]), candidates[best].copy(), 1, len(candidates))
        return candidates[best, 0].copy()


@dataclasses.dataclass(frozen=True)
class WarmStartConfig(RandomShootingConfig):
    warm_fraction: float = 0.5
    """Share of the K candidates sampled around the previous best plan; the rest are fresh walks."""
    warm_variance: float = 0.1
    """Variance over the horizon of the Brownian perturbation added to the previous plan."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.warm_fraction <= 1.0, "warm_fraction", f"must be in [0, 1], got {self.warm_fraction}")
        check(self.warm_variance >= 0, "warm_variance", f"must be >= 0, got {self.warm_variance}")


class WarmStartShooting(RandomShooting):
    """Random shooting that remembers its best plan.

    Each step, the previous best plan shifted by one step (its last action
    repeated; in async execution, by the time that passed) is itself a
    candidate, a `warm_fraction` share of the samples are it plus a small
    Brownian perturbation, and the rest are fresh walks that cover the action box.
    """

    Config = WarmStartConfig

    def __init__(self, dynamics: Dynamics, objective: Objective, action_size: int,
                 rng: np.random.Generator, config: WarmStartConfig = WarmStartConfig()) -> None:
        super().__init__(dynamics, objective, action_size, rng, config)
        self._previous: np.ndarray | None = None  # (N, m) last best plan

    def reset(self) -> None:
        super().reset()
        self._previous = None

    def sample(self) -> np.ndarray:
        c = self.config
        candidates = super().sample()  # (K, N, m) fresh walks
        shifted = self._warm_start(self._previous)  # (N, m)
        if shifted is None:
            return candidates
        warm = int(round(c.warm_fraction * c.samples))
        if warm >= 2:
            perturbation = brownian_noise(self.rng, warm - 1, c.horizon, self.action_size,
                                          c.warm_variance, start=np.zeros(self.action_size))
            candidates[1:warm] = np.clip(shifted + perturbation, -1.0, 1.0)
        candidates[0] = shifted
        return candidates

    def plan(self, obs: np.ndarray, history: History) -> np.ndarray:
        action = super().plan(obs, history)
        self._previous = self.last.plan
        return action
