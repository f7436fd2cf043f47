"""Task registry: `make_task('cartpole_swingup')`, or a randomized variant: `make_task('cartpole_swingup~v17')`."""

from __future__ import annotations

from tdm_control.config import ConfigError
from tdm_control.tasks.acrobot import AcrobotSwingup
from tdm_control.tasks.base import ObservationField, Task
from tdm_control.tasks.cartpole import CartpoleSwingup
from tdm_control.tasks.cartpole_poles import CartpoleThreePoles, CartpoleTwoPoles
from tdm_control.tasks.cheetah import CheetahRun
from tdm_control.tasks.pendulum import PendulumSwingup
from tdm_control.tasks.point_mass import PointMassEasy
from tdm_control.tasks.reacher import ReacherEasy
from tdm_control.tasks.walker import WalkerStand

TASKS: dict[str, type[Task]] = {t.name: t for t in (
    CartpoleSwingup, WalkerStand, CheetahRun, PendulumSwingup, AcrobotSwingup, PointMassEasy, ReacherEasy,
    CartpoleTwoPoles, CartpoleThreePoles)}


def make_task(name: str) -> Task:
    """Builds a task by registry name, or a variant by '<task>~v<seed>'; an unknown name lists the valid ones."""
    from tdm_control.tasks import variants  # imports this registry

    if variants.SEPARATOR in name:
        return variants.make_variant(*variants.parse_variant_name(name))
    try:
        cls = TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(sorted(TASKS))} "
                          f"(or a variant, '<task>{variants.SEPARATOR}<seed>')") from None
    return cls()


__all__ = ["TASKS", "ObservationField", "Task", "make_task"]
