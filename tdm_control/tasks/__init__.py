"""Task registry: `make_task('cartpole_swingup')`."""

from __future__ import annotations

from tdm_control.config import ConfigError
from tdm_control.tasks.base import ObservationField, Task
from tdm_control.tasks.cartpole import CartpoleSwingup
from tdm_control.tasks.cheetah import CheetahRun
from tdm_control.tasks.walker import WalkerStand

TASKS: dict[str, type[Task]] = {t.name: t for t in (CartpoleSwingup, WalkerStand, CheetahRun)}


def make_task(name: str) -> Task:
    """Builds a task by registry name; an unknown name lists the valid ones."""
    try:
        cls = TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(sorted(TASKS))}") from None
    return cls()


__all__ = ["TASKS", "ObservationField", "Task", "make_task"]
