"""Dynamics models behind one interface: `make_dynamics('mujoco', task)`, `make_dynamics('models/x.onnx', task)`."""

from __future__ import annotations

from tdm_control.config import ConfigError
from tdm_control.dynamics.base import Dynamics
from tdm_control.tasks import Task

MODELS = ("mujoco",)
"""Named models; any path ending in .onnx names an exported model."""


def make_dynamics(name: str, task: Task, action_repeat: int = 0, **kwargs) -> Dynamics:
    """Builds a dynamics model for `task`.

    Args:
      name: 'mujoco' (the ground-truth simulator) or a path to an exported .onnx model.
      task: the task the model must predict; an exported model made for another
        task is refused with a ConfigError saying what differs.
      action_repeat: control steps per model step; 0 for the model's own (an
        exported model was trained at one and is refused at any other; 'mujoco'
        takes any, default 1).
      kwargs: passed to the model (nthread for mujoco; device, threads for ONNX).
    """
    if action_repeat < 0:
        raise ConfigError(f"action_repeat must be >= 0 (0: the model's own), got {action_repeat}")
    if name == "mujoco":
        from tdm_control.dynamics.mujoco_model import MujocoDynamics

        return MujocoDynamics(task, action_repeat=action_repeat or 1, **kwargs)
    if name.endswith(".onnx"):
        from tdm_control.dynamics.onnx_model import load_onnx_dynamics

        model = load_onnx_dynamics(name, task, **kwargs)
        if action_repeat and action_repeat != model.action_repeat:
            raise ConfigError(f"{name} was trained with action_repeat {model.action_repeat}; it cannot plan "
                              f"with action_repeat {action_repeat} (leave it 0 to use the model's own)")
        return model
    raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}, or a path to an .onnx file")


__all__ = ["MODELS", "Dynamics", "make_dynamics"]
