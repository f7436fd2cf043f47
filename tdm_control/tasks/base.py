"""What a task is: the joints it reads, the observation it builds, the reward it pays.

A task is the one place that knows a robot. Planners and dynamics models see
arrays; the simulation bridge and the planner node map joint states by name
through a task. The observation a task builds from joint positions and
velocities equals dm_control's flattened observation of the same physics state,
and its reward equals dm_control's reward, so a model trained offline on
dm_control episodes sees the same numbers online (tests check both).
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import os
from typing import ClassVar

import mujoco
import numpy as np

# dm_control picks an OpenGL backend at import; nothing here renders, and an
# unset MUJOCO_GL on a machine without a display prints a GLFW warning.
os.environ.setdefault("MUJOCO_GL", "disable")


@dataclasses.dataclass(frozen=True)
class ObservationField:
    """One named block of the flat observation vector."""

    name: str
    size: int


class Task(abc.ABC):
    """A dm_control task seen through joint states.

    Subclasses set the class attributes and implement `observation`, `reward`
    and `state_from_observation`. Every array method is vectorised over leading
    dimensions: positions (..., J), obs (..., n), action (..., m).
    """

    name: ClassVar[str]
    """Registry name, e.g. 'cartpole_swingup'."""
    domain: ClassVar[str]
    """dm_control suite domain, e.g. 'cartpole'."""
    suite_task: ClassVar[str]
    """dm_control suite task, e.g. 'swingup'."""
    joint_names: ClassVar[tuple[str, ...]]
    """Every joint of the model, in MuJoCo order; joint states are mapped by these names."""
    actuator_names: ClassVar[tuple[str, ...]]
    """Actuators in command order: a torque command is (m,) in this order."""
    observation_layout: ClassVar[tuple[ObservationField, ...]]
    """Blocks of the flat observation, in dm_control's order."""
    control_timestep: ClassVar[float]
    """Seconds between two actions; the physics runs `n_sub_steps` steps per action."""
    episode_steps: ClassVar[int] = 1000
    """Control steps in one episode (dm_control's time limit / control timestep)."""
    max_joint_speed: ClassVar[float] = 200.0
    """Joint speed (rad/s or m/s) beyond which a joint state is a bad measurement, not the robot.
    Measured over 4 episodes of bang-bang Brownian actions: at most 12 (cartpole), 21 (cheetah), 48 (walker);
    over 2 episodes of random +-1 actions held 10 steps: 8 (pendulum), 30 (acrobot), 0.1 (point mass),
    7 (reacher), 45 (two poles), 67 (three poles)."""
    max_free_position: ClassVar[float] = 1e4
    """|position| (m or rad) of a joint without limits beyond which a state is implausible: 10 km of
    travel, or 1600 turns (cos and sin of an angle lose meaning long before float64 does)."""
    limit_margin: ClassVar[float] = 0.5
    """Share of a limited joint's range a position may lie beyond either end: contacts and soft limits
    let joints overshoot (measured: up to 7% of the range, the cart at 2.06 m on its 1.8 m rail)."""

    def __init__(self) -> None:
        xml, assets = self.model_xml()
        self.model = mujoco.MjModel.from_xml_string(xml, assets)
        self._data = mujoco.MjData(self.model)  # scratch for kinematics
        self._validate_model()
        joint_ids = [self.model.joint(j).id for j in self.joint_names]
        self.qpos_index = self.model.jnt_qposadr[joint_ids].copy()  # (J,)
        self.dof_index = self.model.jnt_dofadr[joint_ids].copy()  # (J,)
        actuator_ids = [self.model.actuator(a).id for a in self.actuator_names]
        self.gear = self.model.actuator_gear[actuator_ids, 0].copy()  # (m,) N·m per unit control
        self.control_range = self.model.actuator_ctrlrange[actuator_ids].copy()  # (m, 2)
        self.actuated_joint_names = tuple(self.model.joint(self._actuated_joint(a)).name for a in actuator_ids)
        ratio = self.control_timestep / self.model.opt.timestep
        self.n_sub_steps = int(round(ratio))
        if abs(ratio - self.n_sub_steps) > 1e-6:
            raise ValueError(
                f"{self.name}: control timestep {self.control_timestep} s is not a whole "
                f"number of physics steps of {self.model.opt.timestep} s"
            )

    @classmethod
    def model_xml(cls) -> tuple[str, dict[str, bytes]]:
        """MJCF text of the model this task simulates and the assets it includes (file name -> bytes).

        dm_control's model of `domain` by default; tasks that simulate another model (more poles,
        a randomized variant) override this, and `make_environment` must simulate the same text.
        """
        from dm_control import suite  # heavy import, kept local

        xml, assets = getattr(suite, cls.domain).get_model_and_assets()
        return (xml.decode() if isinstance(xml, bytes) else xml), assets

    def _actuated_joint(self, actuator: int) -> int:
        """The id of the joint `actuator` drives: its own joint, or the one joint of a fixed tendon
        (coefficient 1, so the actuator force is the joint force)."""
        model = self.model
        target = int(model.actuator_trnid[actuator, 0])
        kind = int(model.actuator_trntype[actuator])
        if kind == int(mujoco.mjtTrn.mjTRN_JOINT):
            return target
        if kind == int(mujoco.mjtTrn.mjTRN_TENDON):
            first, count = int(model.tendon_adr[target]), int(model.tendon_num[target])
            wraps = [w for w in range(first, first + count) if model.wrap_prm[w] != 0.0]
            if (len(wraps) == 1 and int(model.wrap_type[wraps[0]]) == int(mujoco.mjtWrap.mjWRAP_JOINT)
                    and model.wrap_prm[wraps[0]] == 1.0):
                return int(model.wrap_objid[wraps[0]])
        raise ValueError(f"{self.name}: actuator {model.actuator(actuator).name!r} does not drive one joint "
                         f"directly (a joint, or a fixed tendon of one joint with coefficient 1)")

    def _validate_model(self) -> None:
        model_joints = tuple(self.model.joint(i).name for i in range(self.model.njnt))
        if model_joints != self.joint_names:
            raise ValueError(
                f"{self.name}: joint_names {self.joint_names} must list every joint of the "
                f"MuJoCo model in model order: {model_joints}"
            )
        for j in self.joint_names:
            kind = int(self.model.jnt_type[self.model.joint(j).id])
            if kind not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
                raise ValueError(f"{self.name}: joint {j!r} is not a one-degree-of-freedom joint")
        if sum(f.size for f in self.observation_layout) <= 0:
            raise ValueError(f"{self.name}: empty observation layout")

    # ------------------------------------------------------------------ sizes
    @property
    def observation_size(self) -> int:
        """n, the length of the flat observation."""
        return sum(f.size for f in self.observation_layout)

    @property
    def action_size(self) -> int:
        """m, one action per actuator, each in [-1, 1]."""
        return len(self.actuator_names)

    @functools.cached_property
    def plausible_joint_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What a joint state of this robot can hold: position bounds low (J,), high (J,) and the
        largest speed (J,), in `joint_names` order (m or rad, m/s or rad/s). Limited joints: their
        MuJoCo range widened by `limit_margin` of its width at each end; others: +-`max_free_position`."""
        ids = [self.model.joint(j).id for j in self.joint_names]
        limited = self.model.jnt_limited[ids].astype(bool)  # (J,)
        ranges = self.model.jnt_range[ids]  # (J, 2)
        margin = self.limit_margin * (ranges[:, 1] - ranges[:, 0])
        low = np.where(limited, ranges[:, 0] - margin, -self.max_free_position)
        high = np.where(limited, ranges[:, 1] + margin, self.max_free_position)
        return low, high, np.full(len(ids), self.max_joint_speed)

    @functools.cached_property
    def observation_names(self) -> tuple[str, ...]:
        """One label per observation scalar, e.g. 'position[0]'."""
        return tuple(f"{f.name}[{i}]" for f in self.observation_layout for i in range(f.size))

    # -------------------------------------------------------------- interface
    @abc.abstractmethod
    def observation(self, positions: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        """Builds the flat observation.

        Args:
          positions: (..., J) joint positions in `joint_names` order (m or rad).
          velocities: (..., J) joint velocities (m/s or rad/s).

        Returns:
          (..., n) float64, equal to dm_control's flattened observation.
        """

    @abc.abstractmethod
    def reward(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Reward for arriving at `obs` after applying `action`.

        Args:
          obs: (..., n) observation after the step.
          action: (..., m) action of the step, in [-1, 1].

        Returns:
          (...,) rewards in [0, 1], equal to dm_control's reward for the step.
        """

    @abc.abstractmethod
    def state_from_observation(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A physics state whose observation is `obs`.

        Coordinates the observation leaves out (a planar robot's horizontal
        position) are set to zero: the dynamics do not depend on them.

        Returns:
          positions (..., J) and velocities (..., J) in `joint_names` order.
        """

    # ---------------------------------------------------------------- helpers
    def action_to_torque(self, action: np.ndarray) -> np.ndarray:
        """Scales actions in [-1, 1] to joint torques (N·m) or forces (N) through the gear."""
        action = np.clip(action, self.control_range[:, 0], self.control_range[:, 1])
        return action * self.gear

    def torque_to_control(self, torque: np.ndarray) -> np.ndarray:
        """Joint torques (N·m) to actuator controls, clamped to the actuator limits."""
        return np.clip(np.asarray(torque, dtype=np.float64) / self.gear,
                       self.control_range[:, 0], self.control_range[:, 1])

    def body_frames(self, positions: np.ndarray, bodies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World positions and orientations of bodies, from MuJoCo's own kinematics.

        Args:
          positions: (..., J) joint positions.
          bodies: (b,) body ids.

        Returns:
          xpos (..., b, 3) in m and xmat (..., b, 9) row-major rotation matrices.
        """
        flat = positions.reshape(-1, positions.shape[-1])  # (B, J)
        xpos = np.empty((flat.shape[0], len(bodies), 3))
        xmat = np.empty((flat.shape[0], len(bodies), 9))
        data = self._data
        for i, q in enumerate(flat):
            data.qpos[self.qpos_index] = q
            mujoco.mj_kinematics(self.model, data)
            xpos[i] = data.xpos[bodies]
            xmat[i] = data.xmat[bodies]
        lead = positions.shape[:-1]
        return xpos.reshape(*lead, len(bodies), 3), xmat.reshape(*lead, len(bodies), 9)

    def subtree_linear_velocity(self, positions: np.ndarray, velocities: np.ndarray,
                                body: int) -> np.ndarray:
        """Velocity of the centre of mass of `body`'s subtree (m/s), as MuJoCo's sensor gives it.

        Args:
          positions, velocities: (..., J).

        Returns:
          (..., 3) world-frame linear velocity.
        """
        q = positions.reshape(-1, positions.shape[-1])
        v = velocities.reshape(-1, velocities.shape[-1])
        out = np.empty((q.shape[0], 3))
        data = self._data
        for i in range(q.shape[0]):
            data.qpos[self.qpos_index] = q[i]
            data.qvel[self.dof_index] = v[i]
            mujoco.mj_kinematics(self.model, data)
            mujoco.mj_comPos(self.model, data)
            mujoco.mj_comVel(self.model, data)
            mujoco.mj_subtreeVel(self.model, data)
            out[i] = data.subtree_linvel[body]
        return out.reshape(*positions.shape[:-1], 3)

    def joint_state_from_physics(self, qpos: np.ndarray, qvel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gathers joint positions and velocities (..., J) from MuJoCo qpos (..., nq), qvel (..., nv)."""
        return qpos[..., self.qpos_index], qvel[..., self.dof_index]

    def physics_from_joint_state(self, positions: np.ndarray, velocities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scatters joint positions and velocities (..., J) into MuJoCo qpos (..., nq), qvel (..., nv)."""
        qpos = np.zeros(positions.shape[:-1] + (self.model.nq,))
        qvel = np.zeros(velocities.shape[:-1] + (self.model.nv,))
        qpos[..., self.qpos_index] = positions
        qvel[..., self.dof_index] = velocities
        return qpos, qvel

    def make_environment(self, seed: int):
        """The dm_control environment of this task, its initial states drawn with `seed`."""
        from dm_control import suite

        return suite.load(self.domain, self.suite_task, task_kwargs={"random": seed})

    def describe(self) -> dict:
        """Everything a model or a log needs to know about the task, JSON-serialisable."""
        return {
            "task": self.name,
            "joint_names": list(self.joint_names),
            "actuator_names": list(self.actuator_names),
            "actuated_joint_names": list(self.actuated_joint_names),
            "observation_layout": [[f.name, f.size] for f in self.observation_layout],
            "observation_size": self.observation_size,
            "action_size": self.action_size,
            "control_timestep": self.control_timestep,
            "n_sub_steps": self.n_sub_steps,
            "gear": self.gear.tolist(),
        }


def environment_with_physics(env, physics, task=None):
    """A dm_control environment like `env` (its time limit, control timestep and task object, or
    `task`) that simulates `physics` instead: a task whose model is not the suite's own."""
    from dm_control.rl import control  # heavy import, kept local

    control_timestep = env.control_timestep()
    new = control.Environment(physics, task if task is not None else env.task,
                              time_limit=env._step_limit * control_timestep, n_sub_steps=env._n_sub_steps,
                              legacy_step=env.physics.legacy_step)
    if new._step_limit != env._step_limit or new.control_timestep() != control_timestep:
        raise ValueError(f"rebuilt environment steps {new._step_limit} x {new.control_timestep()} s, "
                         f"not {env._step_limit} x {control_timestep} s: the physics timestep differs")
    return new


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Wraps radians to [-pi, pi)."""
    return (angle + np.pi) % (2.0 * np.pi) - np.pi
