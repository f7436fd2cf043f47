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
    """A received message cannot be used; the message says what was wrong with it.

    `kind` names the check that failed, one of a fixed set (the nodes throttle their logs by it):
    'misshapen joint state', 'duplicated joint', 'missing joint', 'non-finite joint state',
    'implausible joint state' (finite values no state of the robot has), 'bad observation' (one the
    model cannot take), 'misshapen command', 'non-finite command'.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def _nonfinite(values: np.ndarray, names: Sequence[str]) -> list[str]:
    return [f"{n}={v}" for n, v in zip(names, values) if not np.isfinite(v)]


class JointStateReader:
    """Reads a task's joint positions and velocities out of a JointState's arrays, by name, and checks
    that they describe a state the robot can be in before anything plans from them (`observe`).

    Args:
      task: the robot: its joints and their plausible ranges (`Task.plausible_joint_state`).
      observation_limit: the largest |value| of an observation the model can take (an exported
        TDM's tokenizer range; inf for the ground truth).
    """

    def __init__(self, task: Task, observation_limit: float = np.inf) -> None:
        self.task = task
        self.joint_names = task.joint_names
        self.observation_limit = observation_limit

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
                           f"{velocities.size} velocities; they must have one entry per joint", "misshapen joint state")
        index = {}
        for i, name in enumerate(names):
            if name in index:
                raise BadInput(f"joint state names joint {name!r} twice", "duplicated joint")
            index[name] = i
        missing = [j for j in self.joint_names if j not in index]
        if missing:
            raise BadInput(f"joint state is missing joint(s) {missing}; the task needs {list(self.joint_names)}",
                           "missing joint")
        order = [index[j] for j in self.joint_names]
        q, v = positions[order], velocities[order]  # (J,), (J,)
        bad = _nonfinite(q, [f"position[{j}]" for j in self.joint_names]) + \
            _nonfinite(v, [f"velocity[{j}]" for j in self.joint_names])
        if bad:
            raise BadInput(f"joint state has non-finite values: {', '.join(bad)}", "non-finite joint state")
        return q, v

    def observe(self, names: Sequence[str], positions: Sequence[float],
                velocities: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The one check of a joint state before planning: `read`, then plausibility, then the observation.

        Returns:
          positions (J,), velocities (J,) in the task's joint order, and the observation (n,).

        Raises:
          BadInput: what `read` refuses; a position outside the joint's plausible range or a speed
            above the task's `max_joint_speed` ('implausible joint state'); an observation that is not
            finite or exceeds what the model can take ('bad observation').
        """
        q, v = self.read(names, positions, velocities)  # (J,), (J,)
        low, high, speed = self.task.plausible_joint_state
        bad = [f"position[{j}]={x:.6g} outside [{lo:g}, {hi:g}]"
               for j, x, lo, hi in zip(self.joint_names, q, low, high) if not lo <= x <= hi]
        bad += [f"velocity[{j}]={x:.6g} beyond +-{s:g}" for j, x, s in zip(self.joint_names, v, speed) if abs(x) > s]
        if bad:
            raise BadInput(f"joint state is implausible for {self.task.name}: {', '.join(bad)} (m or rad, m/s or "
                           "rad/s)", "implausible joint state")
        obs = self.task.observation(q, v)  # (n,)
        labels = self.task.observation_names
        bad = [f"{labels[i]}={x:.6g}" for i, x in enumerate(obs) if not abs(x) <= self.observation_limit]
        if bad:
            raise BadInput(f"observation {', '.join(bad)} is not finite or beyond +-{self.observation_limit:g}, "
                           "what the model can take", "bad observation")
        return q, v, obs


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
                           f"{list(self.joints)}", "misshapen command")
        bad = _nonfinite(values, self.joints)
        if bad:
            raise BadInput(f"command has non-finite values: {', '.join(bad)}", "non-finite command")
        return values[self._to_actuators]
