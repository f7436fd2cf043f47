"""Dynamics models behind one interface: `make_dynamics('mujoco', task)`, `make_dynamics('models/x.onnx', task)`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tdm_control.config import ConfigError
from tdm_control.dynamics.base import Dynamics
from tdm_control.tasks import Task

MODELS = ("mujoco",)
"""Named models; any path ending in .onnx names an exported model, and exported models joined
by '+' (`a.onnx+b.onnx`) an ensemble of them (tdm_control/dynamics/ensemble.py)."""


def model_search_dirs() -> list[Path]:
    """Folders a relative model path is looked up in, after the working directory.

    The installed package's share folder (`share/tdm_control`, where `colcon build`
    puts `models/`): found by ament_index_python where it is importable, else by
    reading the ament index of each prefix in AMENT_PREFIX_PATH as it does (a colcon
    workspace sourced without ROS 2); then the source tree this package was imported
    from (an editable install or a checkout).
    """
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory("tdm_control")))
    except ImportError:
        for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
            if (Path(prefix) / "share/ament_index/resource_index/packages/tdm_control").is_file():
                dirs.append(Path(prefix) / "share/tdm_control")
                break
    except Exception:  # noqa: BLE001 - not in a ROS 2 environment, or not installed there
        pass
    dirs.append(Path(__file__).resolve().parents[2])
    return dirs


def resolve_model_path(name: str) -> str:
    """The file an .onnx model name refers to: as given, else relative to `model_search_dirs()`.

    Raises ConfigError listing every place looked in when none holds it.
    """
    path = Path(name).expanduser()
    candidates = [path] if path.is_absolute() else [path] + [d / path for d in model_search_dirs()]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise ConfigError(f"model file {name} not found; looked in: {', '.join(str(c.absolute()) for c in candidates)}. "
                      f"Give an absolute path, or make it with tdm-train (see README, 'Training a TDM')")


def model_digest(name: str) -> str | None:
    """sha256 of a model's file (of its files, in order, for an ensemble); None for 'mujoco'.

    Names what was made with the model (on-policy data, grid results), so a retrained
    file at the same path is told apart from the one they were made with.
    """
    if name in MODELS:
        return None
    digest = hashlib.sha256()
    for part in name.split("+"):
        with open(resolve_model_path(part), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def make_dynamics(name: str, task: Task, action_repeat: int = 0, **kwargs) -> Dynamics:
    """Builds a dynamics model for `task`.

    Args:
      name: 'mujoco' (the ground-truth simulator), a path to an exported .onnx model,
        or several such paths joined by '+': an ensemble planning on their mean prediction.
      task: the task the model must predict; an exported model made for another
        task is refused with a ConfigError saying what differs.
      action_repeat: control steps per model step; 0 for the model's own (an
        exported model was trained at one and is refused at any other; 'mujoco'
        takes any, default 1).
      kwargs: passed to the model (nthread for mujoco; device, threads for ONNX).
    """
    if action_repeat < 0:
        raise ConfigError(f"action_repeat must be >= 0 (0: the model's own), got {action_repeat}")
    if "+" in name:
        from tdm_control.dynamics.ensemble import EnsembleDynamics

        parts = name.split("+")
        if not all(p.endswith(".onnx") for p in parts):
            raise ConfigError(f"ensemble {name!r}: join exported models only (paths ending in .onnx), "
                              f"e.g. models/a.onnx+models/b.onnx")
        members: list[Dynamics] = []
        try:
            for part in parts:
                members.append(make_dynamics(part, task, action_repeat, **kwargs))
            return EnsembleDynamics(members)
        except Exception:
            for member in members:
                member.close()
            raise
    if name == "mujoco":
        from tdm_control.dynamics.mujoco_model import MujocoDynamics

        return MujocoDynamics(task, action_repeat=action_repeat or 1, **kwargs)
    if name.endswith(".onnx"):
        from tdm_control.dynamics.onnx_model import load_onnx_dynamics

        model = load_onnx_dynamics(resolve_model_path(name), task, **kwargs)
        if action_repeat and action_repeat != model.action_repeat:
            raise ConfigError(f"{name} was trained with action_repeat {model.action_repeat}; it cannot plan "
                              f"with action_repeat {action_repeat} (leave it 0 to use the model's own)")
        return model
    raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}, or a path to an .onnx file")


__all__ = ["MODELS", "Dynamics", "make_dynamics"]
