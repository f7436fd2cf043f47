"""Acrobot swing-up: a two-link arm with a motor at the elbow only swings its tip up to a target."""

from __future__ import annotations

import numpy as np

from tdm_control.tasks.base import ObservationField, Task, wrap_angle
from tdm_control.tasks.rewards import tolerance


def rotate_about_y(cosine: np.ndarray, sine: np.ndarray, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World (x, z) of a body-frame vector (3,) of a body turned by an angle about +y, each (...,)."""
    return cosine * vector[0] + sine * vector[2], -sine * vector[0] + cosine * vector[2]


class AcrobotSwingup(Task):
    """dm_control `acrobot/swingup`.

    Observation (6,): the xz rotation entries (sines of the world angles from
    upright) of the upper and lower arm, then their zz entries (cosines), then the
    shoulder and elbow angular velocities (rad/s). Action (1,): elbow torque, gear
    2 N·m per unit. The reward falls off with the distance (m) from the tip to
    the target above the shoulder; the model's geometry is read at construction.
    """

    name = "acrobot_swingup"
    domain = "acrobot"
    suite_task = "swingup"
    joint_names = ("shoulder", "elbow")
    actuator_names = ("elbow",)
    observation_layout = (ObservationField("orientations", 4), ObservationField("velocity", 2))
    control_timestep = 0.01

    def __init__(self) -> None:
        super().__init__()
        model = self.model
        for body, joint in (("upper_arm", "shoulder"), ("lower_arm", "elbow")):
            if np.any(model.body(body).quat != [1, 0, 0, 0]) or np.any(model.joint(joint).axis != [0, 1, 0]):
                raise ValueError(f"acrobot body {body!r} must be unrotated and turn about +y")
        self._shoulder = model.body("upper_arm").pos.copy()  # (3,) m, in the world frame
        self._elbow = model.body("lower_arm").pos.copy()  # (3,) m, in the upper arm's frame
        self._tip = model.site("tip").pos.copy()  # (3,) m, in the lower arm's frame
        self._target = model.site("target").pos.copy()  # (3,) m, in the world frame
        self._target_radius = float(model.site("target").size[0])  # m

    def observation(self, positions, velocities):
        positions = np.asarray(positions, dtype=np.float64)
        upper = positions[..., 0]
        lower = upper + positions[..., 1]  # world angle of the lower arm
        return np.concatenate([np.sin(upper)[..., None], np.sin(lower)[..., None], np.cos(upper)[..., None],
                               np.cos(lower)[..., None], np.asarray(velocities, dtype=np.float64)], axis=-1)

    def tip_to_target(self, obs: np.ndarray) -> np.ndarray:
        """Distance (m) from the tip to the target, (...,), from observations (..., 6)."""
        obs = np.asarray(obs, dtype=np.float64)
        elbow_x, elbow_z = rotate_about_y(obs[..., 2], obs[..., 0], self._elbow)
        tip_x, tip_z = rotate_about_y(obs[..., 3], obs[..., 1], self._tip)
        dx = self._target[0] - (self._shoulder[0] + elbow_x + tip_x)
        dy = self._target[1] - (self._shoulder[1] + self._elbow[1] + self._tip[1])
        dz = self._target[2] - (self._shoulder[2] + elbow_z + tip_z)
        return np.sqrt(dx**2 + dy**2 + dz**2)

    def reward(self, obs, action):
        return tolerance(self.tip_to_target(obs), bounds=(0.0, self._target_radius), margin=1.0)

    def state_from_observation(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        upper = np.arctan2(obs[..., 0], obs[..., 2])
        lower = np.arctan2(obs[..., 1], obs[..., 3])
        positions = np.stack([wrap_angle(upper), wrap_angle(lower - upper)], axis=-1)
        return positions, obs[..., 4:6].copy()
