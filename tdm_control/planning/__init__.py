"""Planner registry: `make_planner('random_shooting', dynamics, objective, m, rng, {'samples': 64})`."""

from __future__ import annotations

import os
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


MEMORY_SHARE = 0.5
"""Share of this machine's memory one plan may take (the model, the node and the OS need the rest)."""
PLANNER_COPIES = 8
"""Arrays of (K, N, m) actions a planner holds at once (samples, warm-started and clipped copies,
proposals, elites), counted in the memory of a plan."""


def machine_memory_bytes() -> int:
    """Physical memory, or the cgroup's limit where that is lower (a container)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def check_plan_memory(config: Any, dynamics: Dynamics, action_size: int, memory_bytes: int | None = None) -> None:
    """Raises ConfigError when one plan of `config`'s samples x horizon would need more than
    `MEMORY_SHARE` of the machine's memory (`memory_bytes`, default `machine_memory_bytes()`), by the
    model's own estimate (`Dynamics.memory_bytes`) plus the planner's action arrays."""
    samples, horizon = config.samples, config.horizon
    need = dynamics.memory_bytes(samples, horizon) + PLANNER_COPIES * 8 * samples * horizon * action_size
    have = machine_memory_bytes() if memory_bytes is None else memory_bytes
    if need > MEMORY_SHARE * have:
        gib = 2.0 ** 30
        raise ConfigError(f"samples {samples} x horizon {horizon}: one plan with model {dynamics.name} needs about "
                          f"{need / gib:.3g} GiB, more than {MEMORY_SHARE:.0%} of this machine's "
                          f"{have / gib:.3g} GiB; lower samples or horizon")


def make_planner(name: str, dynamics: Dynamics, objective: Objective, action_size: int,
                 rng: np.random.Generator, params: dict[str, Any] | None = None) -> Planner:
    """Builds a registered planner with its config from `params`; ConfigError for a bad key or value,
    or sizes whose plans would not fit in memory (`check_plan_memory`)."""
    config = planner_config(name, params)
    check_plan_memory(config, dynamics, action_size)
    return PLANNERS[name](dynamics, objective, action_size, rng, config)


__all__ = ["OBJECTIVES", "PLANNERS", "ObservationReward", "Objective", "PlanInfo", "Planner", "PredictedReward",
           "brownian_noise", "check_plan_memory", "make_objective", "make_planner", "planner_config"]
