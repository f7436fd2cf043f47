"""Planner registry: `make_planner('random_shooting', dynamics, objective, m, rng, {'samples': 64})`."""

from __future__ import annotations

from typing import Any

import numpy as np

from tdm_control.config import ConfigError, from_dict
from tdm_control.dynamics.base import Dynamics
from tdm_control.planning.base import PlanInfo, Planner
from tdm_control.planning.iterative import CEM, MPPI
from tdm_control.planning.noise import brownian_noise
from tdm_control.planning.objectives import OBJECTIVES, Objective, ObservationReward, PredictedReward, make_objective
from tdm_control.planning.proposal import ProposalShooting
from tdm_control.planning.shooting import RandomShooting, WarmStartShooting

PLANNERS: dict[str, type[Planner]] = {
    "random_shooting": RandomShooting,
    "warm_start": WarmStartShooting,
    "proposal": ProposalShooting,
    "cem": CEM,
    "mppi": MPPI,
}
"""Every planner, registered in this one place."""


def planner_config(name: str, params: dict[str, Any] | None = None):
    """The typed config of planner `name`, built from `params`; errors name the bad key."""
    if name not in PLANNERS:
        raise ConfigError(f"unknown planner {name!r}; choose one of: {', '.join(sorted(PLANNERS))}")
    return from_dict(PLANNERS[name].Config, params, where=f"planner {name}")


def make_planner(name: str, dynamics: Dynamics, objective: Objective, action_size: int,
                 rng: np.random.Generator, params: dict[str, Any] | None = None) -> Planner:
    """Builds a registered planner with its config from `params`."""
    config = planner_config(name, params)
    return PLANNERS[name](dynamics, objective, action_size, rng, config)


__all__ = ["OBJECTIVES", "PLANNERS", "ObservationReward", "Objective", "PlanInfo", "Planner", "PredictedReward",
           "brownian_noise", "make_objective", "make_planner", "planner_config"]
