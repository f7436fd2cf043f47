"""Dynamics models behind one interface: `make_dynamics('mujoco', task)`."""

from __future__ import annotations

from tdm_control.config import ConfigError
from tdm_control.dynamics.base import Dynamics
from tdm_control.tasks import Task

MODELS = ("mujoco",)


def make_dynamics(name: str, task: Task, **kwargs) -> Dynamics:
    """Builds a dynamics model for `task`.

    Args:
      name: 'mujoco' (the ground-truth simulator).
      task: the task the model must predict.
    """
    if name == "mujoco":
        from tdm_control.dynamics.mujoco_model import MujocoDynamics

        return MujocoDynamics(task, **kwargs)
    raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")


__all__ = ["MODELS", "Dynamics", "make_dynamics"]
