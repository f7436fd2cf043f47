"""Joint states in, torque commands out: mapping by joint name and refusing bad values.

Both nodes meet the outside world here. A joint state is read by name (never by
order) into a task's joint order; a torque command is laid out in the order of
a `joints` list (the ros2_control JointGroupEffortController convention) and
read back from it. Anything missing, misshapen or non-finite raises
`BadInput` with a message that names what was wrong; the nodes then apply zero
torque, never the bad values.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tdm_control.config import ConfigError
from tdm_control.tasks import Task


class BadInput(ValueError):
    """A received message cannot be used; the message says what was wrong with it."""


def _nonfinite(values: np.ndarray, names: Sequence[str]) -> list[str]:
    return [f"{n}={v}" for n, v in zip(names, values) if not np.isfinite(v)]


class JointStateReader:
    """Reads a task's joint positions and velocities out of a JointState's arrays, by name."""

    def __init__(self, task: Task) -> None:
        self.joint_names = task.joint_names

    def read(self, names: Sequence[str], positions: Sequence[float],
             velocities: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Positions and velocities (J,) in the task's joint order.

        Args:
          names, positions, velocities: the JointState fields (m or rad, m/s or rad/s).
            Extra joints are ignored.

        Raises:
          BadInput: arrays of different lengths, a duplicated or missing joint, or a
            NaN/inf position or velocity of a task joint.
        """
        names = list(names)
        positions = np.asarray(positions, dtype=np.float64)
        velocities = np.asarray(velocities, dtype=np.float64)
        if not (len(names) == positions.size == velocities.size):
            raise BadInput(f"joint state has {len(names)} names, {positions.size} positions and "
                           f"{velocities.size} velocities; they must have one entry per joint")
        index = {}
        for i, name in enumerate(names):
            if name in index:
                raise BadInput(f"joint state names joint {name!r} twice")
            index[name] = i
        missing = [j for j in self.joint_names if j not in index]
        if missing:
            raise BadInput(f"joint state is missing joint(s) {missing}; the task needs {list(self.joint_names)}")
        order = [index[j] for j in self.joint_names]
        q, v = positions[order], velocities[order]  # (J,), (J,)
        bad = _nonfinite(q, [f"position[{j}]" for j in self.joint_names]) + \
            _nonfinite(v, [f"velocity[{j}]" for j in self.joint_names])
        if bad:
            raise BadInput(f"joint state has non-finite values: {', '.join(bad)}")
        return q, v


class CommandLayout:
    """The order of torque commands: one entry per actuated joint, in the order of `joints`.

    Args:
      task: the robot.
      joints: actuated joint names in command order; empty for the task's actuator order.

    Raises:
      ConfigError (naming the `joints` parameter) unless `joints` lists every actuated
      joint of the task exactly once.
    """

    def __init__(self, task: Task, joints: Sequence[str] = ()) -> None:
        actuated = list(task.actuated_joint_names)
        joints = list(joints) or actuated
        if sorted(joints) != sorted(actuated) or len(set(joints)) != len(joints):
            raise ConfigError(f"joints: {joints} must list each actuated joint of {task.name} once: {actuated}")
        self.joints = tuple(joints)
        self._from_actuators = np.array([actuated.index(j) for j in joints])  # command[i] = torque[perm[i]]
        self._to_actuators = np.argsort(self._from_actuators)

    @property
    def size(self) -> int:
        return len(self.joints)

    def zeros(self) -> np.ndarray:
        """The zero command (size,)."""
        return np.zeros(self.size)

    def command(self, torque: np.ndarray) -> np.ndarray:
        """Torques (..., m) in actuator order -> the command (..., m) in `joints` order (N·m, or N for slide joints)."""
        return np.asarray(torque, dtype=np.float64)[..., self._from_actuators]

    def torque(self, command: Sequence[float]) -> np.ndarray:
        """A received command in `joints` order -> torques (m,) in actuator order.

        Raises:
          BadInput: wrong length, or a NaN/inf entry.
        """
        values = np.asarray(command, dtype=np.float64)
        if values.ndim != 1 or values.size != self.size:
            raise BadInput(f"command has {values.size} values; expected {self.size}, one per joint "
                           f"{list(self.joints)}")
        bad = _nonfinite(values, self.joints)
        if bad:
            raise BadInput(f"command has non-finite values: {', '.join(bad)}")
        return values[self._to_actuators]
