"""Pendulum swing-up: swing a torque-limited pendulum upright and hold it there."""

from __future__ import annotations

import numpy as np

from tdm_control.tasks.base import ObservationField, Task, wrap_angle
from tdm_control.tasks.rewards import tolerance

UPRIGHT_COSINE = float(np.cos(np.deg2rad(8.0)))
"""Cosine of the largest angle from upright (8 degrees) that earns the reward."""


class PendulumSwingup(Task):
    """dm_control `pendulum/swingup`.

    Observation (3,): the pole's (zz, xz) rotation entries, i.e. the cosine and
    sine of the hinge angle (0 is upright), and its angular velocity (rad/s).
    Action (1,): hinge torque, gear 1 N·m per unit. The reward is 1 within 8
    degrees of upright, else 0.
    """

    name = "pendulum_swingup"
    domain = "pendulum"
    suite_task = "swingup"
    joint_names = ("hinge",)
    actuator_names = ("torque",)
    observation_layout = (ObservationField("orientation", 2), ObservationField("velocity", 1))
    control_timestep = 0.02

    def observation(self, positions, velocities):
        angle = np.asarray(positions, dtype=np.float64)[..., 0]
        # The pole body is unrotated at angle 0 and turns about +y: zz = cos, xz = sin.
        return np.concatenate([np.cos(angle)[..., None], np.sin(angle)[..., None],
                               np.asarray(velocities, dtype=np.float64)], axis=-1)

    def reward(self, obs, action):
        cosine = np.asarray(obs, dtype=np.float64)[..., 0]
        return tolerance(cosine, bounds=(UPRIGHT_COSINE, 1.0))

    def state_from_observation(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        angle = wrap_angle(np.arctan2(obs[..., 1], obs[..., 0]))
        return angle[..., None], obs[..., 2:3].copy()
