"""Cheetah run: a planar quadruped runs forward as fast as it can."""

from __future__ import annotations

import numpy as np

from tdm_control.tasks.base import ObservationField, Task
from tdm_control.tasks.rewards import tolerance

RUN_SPEED = 10.0
"""Forward speed (m/s) of the centre of mass at which the reward saturates."""


class CheetahRun(Task):
    """dm_control `cheetah/run`.

    Observation (17,): joint positions without rootx (rootz in m, the rest in
    rad), then all 9 joint velocities. Action (6,): back then front thigh, shin
    and foot motors. The reward is the forward speed of the centre of mass, which
    the observation determines through the model's kinematics.
    """

    name = "cheetah_run"
    domain = "cheetah"
    suite_task = "run"
    joint_names = ("rootx", "rootz", "rooty", "bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
    actuator_names = ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
    observation_layout = (ObservationField("position", 8), ObservationField("velocity", 9))
    control_timestep = 0.01

    def __init__(self) -> None:
        super().__init__()
        self._torso = self.model.body("torso").id

    def observation(self, positions, velocities):
        return np.concatenate([np.asarray(positions, dtype=np.float64)[..., 1:],
                               np.asarray(velocities, dtype=np.float64)], axis=-1)

    def reward(self, obs, action):
        positions, velocities = self.state_from_observation(obs)
        speed = self.subtree_linear_velocity(positions, velocities, self._torso)[..., 0]
        return tolerance(speed, bounds=(RUN_SPEED, float("inf")), margin=RUN_SPEED,
                         value_at_margin=0.0, sigmoid="linear")

    def state_from_observation(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        rootx = np.zeros(obs.shape[:-1] + (1,))  # unobserved; running is invariant to it
        return np.concatenate([rootx, obs[..., :8]], axis=-1), obs[..., 8:17].copy()
