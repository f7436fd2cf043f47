"""Dynamics models behind one interface: `make_dynamics('mujoco', task)`, `make_dynamics('models/x.onnx', task)`."""

from __future__ import annotations

from tdm_control.config import ConfigError
from tdm_control.dynamics.base import Dynamics
from tdm_control.tasks import Task

MODELS = ("mujoco",)
"""Named models; any path ending in .onnx names an exported model."""


def make_dynamics(name: str, task: Task, **kwargs) -> Dynamics:
    """Builds a dynamics model for `task`.

    Args:
      name: 'mujoco' (the ground-truth simulator) or a path to an exported .onnx model.
      task: the task the model must predict; an exported model made for another
        task is refused with a ConfigError saying what differs.
      kwargs: passed to the model (nthread for mujoco; device, threads for ONNX).
    """
    if name == "mujoco":
        from tdm_control.dynamics.mujoco_model import MujocoDynamics

        return MujocoDynamics(task, **kwargs)
    if name.endswith(".onnx"):
        from tdm_control.dynamics.onnx_model import load_onnx_dynamics

        return load_onnx_dynamics(name, task, **kwargs)
    raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}, or a path to an .onnx file")


__all__ = ["MODELS", "Dynamics", "make_dynamics"]
