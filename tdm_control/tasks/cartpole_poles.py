"""Cartpole with a chain of poles: swing two or three poles hinged end to end on a cart upright."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from tdm_control.tasks.base import ObservationField, Task, wrap_angle
from tdm_control.tasks.rewards import tolerance


class CartpolePoles(Task):
    """dm_control's cartpole swing-up with `n_poles` poles (`cartpole/two_poles`, `cartpole/three_poles`).

    Observation (1 + 2P + 1 + P,) for P poles: cart position (m), then per pole the
    cosine and sine of its world angle from upright (the sum of the hinge angles
    below it: dm_control's (zz, xz) rotation entries), cart velocity (m/s), hinge
    angular velocities (rad/s). Action (1,): cart force, gear 10 N per unit.
    """

    domain = "cartpole"
    actuator_names = ("slide",)
    control_timestep = 0.01
    n_poles: ClassVar[int]
    """P, the poles in the chain."""

    @classmethod
    def model_xml(cls):
        from dm_control import suite  # heavy import, kept local

        xml, assets = suite.cartpole.get_model_and_assets(num_poles=cls.n_poles)
        return (xml.decode() if isinstance(xml, bytes) else xml), assets

    def observation(self, positions, velocities):
        positions = np.asarray(positions, dtype=np.float64)
        world = np.cumsum(positions[..., 1:], axis=-1)  # (..., P) each pole's angle from upright
        pairs = np.stack([np.cos(world), np.sin(world)], axis=-1)  # (..., P, 2)
        pairs = pairs.reshape(*positions.shape[:-1], 2 * self.n_poles)
        return np.concatenate([positions[..., :1], pairs, np.asarray(velocities, dtype=np.float64)], axis=-1)

    def reward(self, obs, action):
        obs = np.asarray(obs, dtype=np.float64)
        p = self.n_poles
        cart_position, cosines = obs[..., 0], obs[..., 1:1 + 2 * p:2]  # (...,), (..., P)
        angular_velocities = obs[..., 2 + 2 * p:]  # (..., P) hinge velocities
        upright = ((cosines + 1.0) / 2.0).mean(axis=-1)
        centered = (1.0 + tolerance(cart_position, margin=2.0)) / 2.0
        small_control = tolerance(np.asarray(action)[..., 0], margin=1.0, value_at_margin=0.0,
                                  sigmoid="quadratic")
        small_control = (4.0 + small_control) / 5.0
        small_velocity = (1.0 + tolerance(angular_velocities, margin=5.0).min(axis=-1)) / 2.0
        return upright * small_control * small_velocity * centered

    def state_from_observation(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        p = self.n_poles
        world = np.arctan2(obs[..., 2:2 + 2 * p:2], obs[..., 1:1 + 2 * p:2])  # (..., P)
        hinges = wrap_angle(np.diff(world, axis=-1, prepend=0.0))  # each hinge turns its pole from the one below
        return np.concatenate([obs[..., :1], hinges], axis=-1), obs[..., 1 + 2 * p:].copy()


class CartpoleTwoPoles(CartpolePoles):
    """dm_control `cartpole/two_poles`: observation (8,), action (1,)."""

    name = "cartpole_two_poles"
    suite_task = "two_poles"
    n_poles = 2
    joint_names = ("slider", "hinge_1", "hinge_2")
    observation_layout = (ObservationField("position", 5), ObservationField("velocity", 3))


class CartpoleThreePoles(CartpolePoles):
    """dm_control `cartpole/three_poles`: observation (11,), action (1,)."""

    name = "cartpole_three_poles"
    suite_task = "three_poles"
    n_poles = 3
    joint_names = ("slider", "hinge_1", "hinge_2", "hinge_3")
    observation_layout = (ObservationField("position", 7), ObservationField("velocity", 4))
