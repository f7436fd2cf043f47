"""Reacher: a planar two-link arm touches a target placed at random each episode.

dm_control places the target by moving a geom of the world at the start of an
episode, so its position is in the model, not in any joint state, and the
observation (the vector from the finger to the target) is not a function of
the arm's joint states. Here the target rides on two unactuated slide joints,
`target_x` and `target_y`: the target becomes part of the joint state, the
arm's dynamics stay dm_control's (contacts are off, so nothing couples the
target to the arm), and the observation and reward built from joint states
equal dm_control's `reacher/easy` for the same arm state and target.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ElementTree

import numpy as np

from tdm_control.tasks.base import ObservationField, Task, environment_with_physics
from tdm_control.tasks.rewards import tolerance

TARGET_JOINTS = ("target_x", "target_y")
"""The slide joints (m, along world x and y) that carry the target."""


def with_target_joints(xml: str) -> str:
    """dm_control's reacher MJCF with the target geom moved onto a body with two free slide joints.

    The body sits where the geom was; the joints have no damping, limits or actuator, so the
    target stays where an episode puts it (its joint positions are its offset from there).
    """
    root = ElementTree.fromstring(xml)
    worldbody = root.find("worldbody")
    geom = worldbody.find("geom[@name='target']")
    body = ElementTree.Element("body", name="target", pos=geom.get("pos", "0 0 0"))
    for name, axis in zip(TARGET_JOINTS, ("1 0 0", "0 1 0")):
        ElementTree.SubElement(body, "joint", name=name, type="slide", axis=axis, damping="0", limited="false")
    geom.set("pos", "0 0 0")
    worldbody.remove(geom)
    body.append(geom)
    worldbody.append(body)
    return ElementTree.tostring(root, encoding="unicode")


@functools.cache
def _joint_target_task_class():
    """dm_control's Reacher task, placing its target through the target joints (defined lazily:
    dm_control is a heavy import)."""
    from dm_control.suite import base, reacher
    from dm_control.suite.utils import randomizers

    class JointTargetReacher(reacher.Reacher):
        """Draws the same initial state and target as dm_control's Reacher for the same seed."""

        def initialize_episode(self, physics):
            physics.named.model.geom_size["target", 0] = self._target_size
            # Unlimited slide joints are left alone by the randomizer: the arm draws as in dm_control.
            randomizers.randomize_limited_and_rotational_joints(physics, self.random)
            angle = self.random.uniform(0, 2 * np.pi)
            radius = self.random.uniform(0.05, 0.20)
            physics.named.data.qpos[TARGET_JOINTS[0]] = radius * np.sin(angle)
            physics.named.data.qpos[TARGET_JOINTS[1]] = radius * np.cos(angle)
            base.Task.initialize_episode(self, physics)

        def get_observation(self, physics):
            obs = super().get_observation(physics)
            obs["position"] = physics.named.data.qpos[["shoulder", "wrist"]].copy()
            obs["velocity"] = physics.named.data.qvel[["shoulder", "wrist"]].copy()
            return obs

    return JointTargetReacher


def rotate_about_z(cosine: np.ndarray, sine: np.ndarray, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World (x, y) of a body-frame vector (3,) of a body turned by an angle about +z, each (...,)."""
    return cosine * vector[0] - sine * vector[1], sine * vector[0] + cosine * vector[1]


class ReacherEasy(Task):
    """dm_control `reacher/easy`, its target carried by two slide joints (see the module docstring).

    Joints: shoulder, wrist (rad), target_x, target_y (m). Observation (6,): shoulder
    and wrist angles (rad), the finger-to-target vector in the plane (m), shoulder
    and wrist angular velocities (rad/s). Action (2,): shoulder and wrist torques,
    gear 0.05 N·m per unit. The reward is 1 while the finger touches the target.
    """

    name = "reacher_easy"
    domain = "reacher"
    suite_task = "easy"
    joint_names = ("shoulder", "wrist") + TARGET_JOINTS
    actuator_names = ("shoulder", "wrist")
    observation_layout = (ObservationField("position", 2), ObservationField("to_target", 2),
                          ObservationField("velocity", 2))
    control_timestep = 0.02

    @classmethod
    def model_xml(cls):
        xml, assets = super().model_xml()
        return with_target_joints(xml), assets

    def __init__(self) -> None:
        super().__init__()
        model = self.model
        for body, joint in (("arm", "shoulder"), ("hand", "wrist")):
            if np.any(model.body(body).quat != [1, 0, 0, 0]) or np.any(model.joint(joint).axis != [0, 0, 1]):
                raise ValueError(f"reacher body {body!r} must be unrotated and turn about +z")
        if model.body_parentid[model.body("target").id] != 0:
            raise ValueError("reacher target body must be a child of the world")
        self._shoulder = model.body("arm").pos.copy()  # (3,) m, world frame
        self._wrist = model.body("hand").pos.copy()  # (3,) m, arm frame
        self._finger = model.body("finger").pos + model.geom("finger").pos  # (3,) m, hand frame
        self._target_rest = model.body("target").pos + model.geom("target").pos  # (3,) m, world, at zero joints
        self._touch = float(model.geom("target").size[0] + model.geom("finger").size[0])  # m

    def observation(self, positions, velocities):
        positions = np.asarray(positions, dtype=np.float64)
        shoulder, hand = positions[..., 0], positions[..., 0] + positions[..., 1]
        wrist_x, wrist_y = rotate_about_z(np.cos(shoulder), np.sin(shoulder), self._wrist)
        finger_x, finger_y = rotate_about_z(np.cos(hand), np.sin(hand), self._finger)
        to_x = (self._target_rest[0] + positions[..., 2]) - (self._shoulder[0] + wrist_x + finger_x)
        to_y = (self._target_rest[1] + positions[..., 3]) - (self._shoulder[1] + wrist_y + finger_y)
        return np.concatenate([positions[..., :2], to_x[..., None], to_y[..., None],
                               np.asarray(velocities, dtype=np.float64)[..., :2]], axis=-1)

    def reward(self, obs, action):
        obs = np.asarray(obs, dtype=np.float64)
        distance = np.sqrt(obs[..., 2] ** 2 + obs[..., 3] ** 2)
        return tolerance(distance, bounds=(0.0, self._touch))

    def state_from_observation(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        # The target is where the observation puts it: the finger's position plus the finger-to-target vector.
        arm = np.zeros(obs.shape[:-1] + (len(self.joint_names),))
        arm[..., :2] = obs[..., :2]
        rest_to_finger = self.observation(arm, np.zeros_like(arm))[..., 2:4]  # target at rest minus finger
        positions = arm.copy()
        positions[..., 2:4] = obs[..., 2:4] - rest_to_finger
        velocities = np.zeros_like(positions)
        velocities[..., :2] = obs[..., 4:6]  # the target does not move
        return positions, velocities

    def make_environment(self, seed: int):
        """dm_control's `reacher/easy` for `seed` (same arm state and target draws), with this
        task's model: the target on its joints."""
        from dm_control import suite

        env = suite.load(self.domain, self.suite_task, task_kwargs={"random": seed})
        physics = type(env.physics).from_xml_string(*self.model_xml())
        task = _joint_target_task_class()(target_size=env.task._target_size, random=seed)
        return environment_with_physics(env, physics, task)
