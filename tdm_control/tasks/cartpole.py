"""Cartpole swing-up: swing a pole hinged on a cart upright and balance it there."""

from __future__ import annotations

import numpy as np

from tdm_control.tasks.base import ObservationField, Task, wrap_angle
from tdm_control.tasks.rewards import tolerance


class CartpoleSwingup(Task):
    """dm_control `cartpole/swingup`.

    Observation (5,): cart position (m), pole angle cosine and sine, cart
    velocity (m/s), pole angular velocity (rad/s). Action (1,): cart force,
    gear 10 N per unit.
    """

    name = "cartpole_swingup"
    domain = "cartpole"
    suite_task = "swingup"
    joint_names = ("slider", "hinge_1")
    actuator_names = ("slide",)
    observation_layout = (ObservationField("position", 3), ObservationField("velocity", 2))
    control_timestep = 0.01

    def observation(self, positions, velocities):
        positions = np.asarray(positions, dtype=np.float64)
        angle = positions[..., 1]
        # The pole's z-z and x-z rotation entries (dm_control's bounded_position) are
        # the cosine and sine of the hinge angle: the pole's frame is unrotated at 0.
        return np.concatenate(
            [positions[..., :1], np.cos(angle)[..., None], np.sin(angle)[..., None],
             np.asarray(velocities, dtype=np.float64)], axis=-1)

    def reward(self, obs, action):
        obs = np.asarray(obs, dtype=np.float64)
        cart_position, cosine, angular_velocity = obs[..., 0], obs[..., 1], obs[..., 4]
        upright = (cosine + 1.0) / 2.0
        centered = (1.0 + tolerance(cart_position, margin=2.0)) / 2.0
        small_control = tolerance(np.asarray(action)[..., 0], margin=1.0, value_at_margin=0.0,
                                  sigmoid="quadratic")
        small_control = (4.0 + small_control) / 5.0
        small_velocity = (1.0 + tolerance(angular_velocity, margin=5.0)) / 2.0
        return upright * small_control * small_velocity * centered

    def state_from_observation(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        angle = wrap_angle(np.arctan2(obs[..., 2], obs[..., 1]))
        return np.stack([obs[..., 0], angle], axis=-1), obs[..., 3:5].copy()
