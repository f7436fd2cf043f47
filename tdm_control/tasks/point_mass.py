"""Point mass: push a mass on a plane to a target at the centre, with little force."""

from __future__ import annotations

import numpy as np

from tdm_control.tasks.base import ObservationField, Task
from tdm_control.tasks.rewards import tolerance


class PointMassEasy(Task):
    """dm_control `point_mass/easy`.

    Observation (4,): x and y position (m), then x and y velocity (m/s).
    Action (2,): forces along x and y through two fixed tendons, gear 0.1 N per
    unit. The target is a fixed geom of the world (at the centre in dm_control's
    model; `hard`, which draws new actuation directions every episode, is not a
    joint-state task). Reward: near the target, times a small-force term.
    """

    name = "point_mass_easy"
    domain = "point_mass"
    suite_task = "easy"
    joint_names = ("root_x", "root_y")
    actuator_names = ("t1", "t2")
    observation_layout = (ObservationField("position", 2), ObservationField("velocity", 2))
    control_timestep = 0.02

    def __init__(self) -> None:
        super().__init__()
        model = self.model
        body = model.body("pointmass")
        axes = model.jnt_axis[[model.joint(j).id for j in self.joint_names]]
        if model.body_parentid[body.id] != 0 or np.any(body.quat != [1, 0, 0, 0]) or np.any(axes != np.eye(3)[:2]):
            raise ValueError("point_mass must slide an unrotated child of the world along x and y")
        target = model.geom("target")
        if int(model.geom_bodyid[target.id]) != 0:
            raise ValueError("point_mass target must be a geom of the world")
        # World position (m) of the mass geom at zero joint positions, and of the target.
        self._mass_rest = body.pos + model.geom("pointmass").pos  # (3,)
        self._target = target.pos.copy()  # (3,)
        self._target_size = float(target.size[0])  # m

    def observation(self, positions, velocities):
        return np.concatenate([np.asarray(positions, dtype=np.float64),
                               np.asarray(velocities, dtype=np.float64)], axis=-1)

    def reward(self, obs, action):
        obs = np.asarray(obs, dtype=np.float64)
        dx = self._target[0] - (self._mass_rest[0] + obs[..., 0])
        dy = self._target[1] - (self._mass_rest[1] + obs[..., 1])
        dz = self._target[2] - self._mass_rest[2]
        distance = np.sqrt(dx**2 + dy**2 + dz**2)
        near_target = tolerance(distance, bounds=(0.0, self._target_size), margin=self._target_size)
        small_control = tolerance(np.asarray(action, dtype=np.float64), margin=1.0, value_at_margin=0.0,
                                  sigmoid="quadratic").mean(axis=-1)
        return near_target * (small_control + 4.0) / 5.0

    def state_from_observation(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        return obs[..., 0:2].copy(), obs[..., 2:4].copy()
