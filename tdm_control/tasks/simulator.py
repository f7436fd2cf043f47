"""The simulated robot: a task's dm_control environment, driven by joint torques."""

from __future__ import annotations

import numpy as np

from tdm_control.tasks import Task


class Simulator:
    """Steps a task's MuJoCo physics at the control rate, one torque command per step.

    Episodes start from dm_control's own initial-state distribution, drawn with
    `seed`, and end after `task.episode_steps` steps. Rewards are dm_control's.
    """

    def __init__(self, task: Task, seed: int) -> None:
        self.task = task
        self.seed = seed
        self.env = task.make_environment(seed)
        self.physics = self.env.physics
        self.step_count = 0
        self.episode_return = 0.0
        self.last_reward = 0.0

    def reset(self) -> None:
        """Starts a new episode from a fresh initial state."""
        self.env.reset()
        self.step_count = 0
        self.episode_return = 0.0
        self.last_reward = 0.0

    @property
    def done(self) -> bool:
        """True once the episode has run its `episode_steps` steps."""
        return self.step_count >= self.task.episode_steps

    @property
    def time(self) -> float:
        """Simulated seconds since the episode began."""
        return self.step_count * self.task.control_timestep

    def joint_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions (J,) in m or rad, velocities (J,) in m/s or rad/s, efforts (J,) in N or N·m.

        In `task.joint_names` order; efforts are the actuator forces the last step applied.
        """
        data = self.physics.data
        positions, velocities = self.task.joint_state_from_physics(data.qpos.copy(), data.qvel.copy())
        efforts = data.qfrc_actuator[self.task.dof_index].copy()
        return positions, velocities, efforts

    def save(self) -> tuple:
        """A snapshot of the episode (physics state and counters) for `restore`."""
        # dm_control's environment counts its own steps towards the time limit; without
        # restoring that count, steps taken between save and restore (lookahead, e.g. the
        # open-loop prediction error) would end the episode early and reset the physics.
        env_counters = (self.env._step_count, self.env._reset_next_step)
        return (self.physics.get_state().copy(), self.step_count, self.episode_return, self.last_reward,
                env_counters)

    def restore(self, snapshot: tuple) -> None:
        """Returns to a snapshot taken by `save`."""
        state, self.step_count, self.episode_return, self.last_reward, env_counters = snapshot
        self.env._step_count, self.env._reset_next_step = env_counters
        with self.physics.reset_context():  # recomputes derived quantities for the restored state
            self.physics.set_state(state)

    def step(self, torque: np.ndarray) -> float:
        """Applies joint torques (m,) in N·m (N for slide joints) for one control step.

        Torques go through the actuator gear to controls, clamped to the actuator
        limits. Returns the reward of the step.
        """
        if self.done:
            raise RuntimeError("episode is over; call reset() before stepping again")
        control = self.task.torque_to_control(torque)
        timestep = self.env.step(control)
        self.step_count += 1
        self.last_reward = float(timestep.reward)
        self.episode_return += self.last_reward
        return self.last_reward
