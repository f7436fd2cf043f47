"""Proposal-biased MPC (paper section 5.1.1): the sequence model proposes, noise explores, the model judges.

Along each candidate's predicted trajectory the same sequence model, read as a
behaviour-cloning policy, proposes the mean action for the predicted
observation; temporally correlated (Brownian) noise is added; the model then
predicts where that action leads. The best candidate's first action is applied.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tdm_control.config import ConfigError
from tdm_control.dynamics.base import Dynamics
from tdm_control.history import History
from tdm_control.planning.base import PlanInfo, Planner
from tdm_control.planning.noise import brownian_noise
from tdm_control.planning.objectives import Objective
from tdm_control.planning.shooting import RandomShootingConfig


def require_proposals(dynamics: Dynamics, what: str) -> None:
    """ConfigError unless `dynamics` proposes actions."""
    if not dynamics.proposes:
        raise ConfigError(f"{what} needs a model that proposes actions (an exported TDM); model "
                          f"{dynamics.name!r} does not")


def proposal_noise(rng: np.random.Generator, samples: int, horizon: int, action_size: int,
                   variance: float) -> np.ndarray:
    """Zero-mean Brownian noise (K, N, m) added to proposals.

    The walk starts at a draw with the same variance as its displacement over
    the horizon, so even the first action is perturbed; candidate 0 has no noise:
    the pure proposal is always among the candidates.
    """
    start = rng.normal(0.0, np.sqrt(variance), size=(samples, action_size))
    noise = brownian_noise(rng, samples, horizon, action_size, variance, start=start)
    # brownian_noise clips to [-1, 1]; noise beyond that would saturate every action anyway.
    noise[0] = 0.0
    return noise


@dataclasses.dataclass(frozen=True)
class ProposalConfig(RandomShootingConfig):
    noise_variance: float = 0.2
    """Variance of the Brownian noise added to proposals (the paper's sigma sweep, fig. 5)."""


class ProposalShooting(Planner):
    """Random shooting around the model's own behaviour-cloning proposals."""

    Config = ProposalConfig

    def __init__(self, dynamics: Dynamics, objective: Objective, action_size: int,
                 rng: np.random.Generator, config: ProposalConfig = ProposalConfig()) -> None:
        super().__init__(dynamics, objective, action_size, rng)
        require_proposals(dynamics, "planner 'proposal'")
        self.config = config

    def plan(self, obs: np.ndarray, history: History) -> np.ndarray:
        c = self.config
        noise = proposal_noise(self.rng, c.samples, c.horizon, self.action_size, c.noise_variance)
        actions, returns = self.evaluate_proposals(obs, history, noise)
        best = int(np.argmax(returns))
        self.last = PlanInfo(float(returns[best]), actions[best].copy(), 1, c.samples)
        return np.clip(actions[best, 0], -1.0, 1.0)
