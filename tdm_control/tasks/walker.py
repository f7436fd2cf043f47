"""Walker stand: a planar biped gets up from lying down and stands tall."""

from __future__ import annotations

import mujoco
import numpy as np

from tdm_control.tasks.base import ObservationField, Task, wrap_angle
from tdm_control.tasks.rewards import tolerance

STAND_HEIGHT = 1.2
"""Torso height (m) above which the standing term is 1."""


class WalkerStand(Task):
    """dm_control `walker/stand`.

    Observation (24,): the (xx, xz) rotation entries of the 7 bodies (torso,
    then right and left thigh, leg, foot), torso height (m), and the 9 joint
    velocities (rootz, rootx in m/s; the rest in rad/s). Action (6,): hip, knee
    and ankle motors, right then left.
    """

    name = "walker_stand"
    domain = "walker"
    suite_task = "stand"
    joint_names = ("rootz", "rootx", "rooty", "right_hip", "right_knee", "right_ankle",
                   "left_hip", "left_knee", "left_ankle")
    actuator_names = ("right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle")
    observation_layout = (ObservationField("orientations", 14), ObservationField("height", 1),
                          ObservationField("velocity", 9))
    control_timestep = 0.025

    def __init__(self) -> None:
        super().__init__()
        model = self.model
        self._bodies = np.arange(1, model.nbody)  # every body but the world
        self._torso = model.body("torso").id
        # Planar chain: every body is unrotated relative to its parent and every
        # hinge turns about +y or -y, so a body's pitch is its parent's pitch plus
        # (axis sign) x (hinge angle). Recorded here to invert observations.
        self._hinges = []  # (joint index in joint_names, body row, parent row or -1, axis sign)
        rows = {int(b): i for i, b in enumerate(self._bodies)}
        for j, name in enumerate(self.joint_names):
            joint = model.joint(name)
            if int(model.jnt_type[joint.id]) != int(mujoco.mjtJoint.mjJNT_HINGE):
                continue
            body = int(model.jnt_bodyid[joint.id])
            if np.any(model.body_quat[body] != [1, 0, 0, 0]):
                raise ValueError(f"walker body {model.body(body).name} is rotated; "
                                 f"the planar inverse needs unrotated bodies")
            sign = float(model.jnt_axis[joint.id, 1])
            parent = int(model.body_parentid[body])
            self._hinges.append((j, rows[body], rows.get(parent, -1), sign))
        self._torso_rest_height = float(model.body_pos[self._torso, 2])

    def observation(self, positions, velocities):
        positions = np.asarray(positions, dtype=np.float64)
        xpos, xmat = self.body_frames(positions, self._bodies)  # (..., 7, 3), (..., 7, 9)
        orientations = xmat[..., [0, 2]].reshape(*positions.shape[:-1], 14)  # xx, xz per body
        height = xpos[..., 0, 2:3]  # torso is the first body
        return np.concatenate([orientations, height, np.asarray(velocities, dtype=np.float64)], axis=-1)

    def reward(self, obs, action):
        obs = np.asarray(obs, dtype=np.float64)
        height = obs[..., 14]
        # For a pitch-only rotation the z-z entry equals the x-x entry.
        torso_upright = obs[..., 0]
        standing = tolerance(height, bounds=(STAND_HEIGHT, float("inf")), margin=STAND_HEIGHT / 2)
        upright = (1.0 + torso_upright) / 2.0
        return (3.0 * standing + upright) / 4.0

    def state_from_observation(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        pitch = np.arctan2(obs[..., 1:14:2], obs[..., 0:14:2])  # (..., 7) world pitch per body
        positions = np.zeros(obs.shape[:-1] + (len(self.joint_names),))
        for j, row, parent_row, sign in self._hinges:
            parent_pitch = pitch[..., parent_row] if parent_row >= 0 else 0.0
            positions[..., j] = sign * wrap_angle(pitch[..., row] - parent_pitch)
        positions[..., self.joint_names.index("rootz")] = obs[..., 14] - self._torso_rest_height
        # rootx is not observed; the floor is uniform along x, so 0 is as good as any.
        return positions, obs[..., 15:24].copy()
