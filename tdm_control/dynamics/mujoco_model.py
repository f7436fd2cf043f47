"""The ground-truth model: MuJoCo itself, rolled out on several threads."""

from __future__ import annotations

import os

import mujoco
import mujoco.rollout
import numpy as np

from tdm_control.dynamics.base import Dynamics
from tdm_control.history import History
from tdm_control.tasks import Task

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


class MujocoDynamics(Dynamics):
    """Answers `rollout` by simulating the task's own MuJoCo model.

    The observation is turned back into a physics state (the task's
    `state_from_observation`), each action is held for `action_repeat` control
    steps of the task's `n_sub_steps` physics steps each, and the K sequences run in parallel
    through `mujoco.rollout`, bit-identical to a Python loop over `mj_step`.
    This is the best model any learned model can be: the reference.
    """

    name = "mujoco"

    def __init__(self, task: Task, nthread: int | None = None, action_repeat: int = 1) -> None:
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        self.task = task
        self.action_repeat = action_repeat
        self.model = task.model
        self.nthread = max(1, nthread or os.cpu_count() or 1)
        self._datas = [mujoco.MjData(self.model) for _ in range(self.nthread)]
        self._start = mujoco.MjData(self.model)
        self._pool = mujoco.rollout.Rollout(nthread=self.nthread) if self.nthread > 1 else None
        self._state_size = mujoco.mj_stateSize(self.model, STATE_SPEC)
        # Row layout of mjSTATE_FULLPHYSICS: time, qpos, qvel, ...
        self._qpos = slice(1, 1 + self.model.nq)
        self._qvel = slice(1 + self.model.nq, 1 + self.model.nq + self.model.nv)

    def initial_state(self, obs: np.ndarray) -> np.ndarray:
        """The (nstate,) full physics state MuJoCo starts from for observation `obs` (n,)."""
        positions, velocities = self.task.state_from_observation(np.asarray(obs, dtype=np.float64))
        qpos, qvel = self.task.physics_from_joint_state(positions, velocities)
        mujoco.mj_resetData(self.model, self._start)
        self._start.qpos[:] = qpos
        self._start.qvel[:] = qvel
        state = np.empty(self._state_size)
        mujoco.mj_getState(self.model, self._start, state, STATE_SPEC)
        return state

    def rollout(self, history: History, obs: np.ndarray, actions: np.ndarray):
        actions = self.check_actions(actions, self.task.action_size)
        k = actions.shape[0]
        sub = self.task.n_sub_steps * self.action_repeat
        controls = np.repeat(actions, sub, axis=1)  # (K, N*sub, m): each action held for sub physics steps
        start = np.broadcast_to(self.initial_state(obs), (k, self._state_size))
        if self._pool is not None:
            states, _ = self._pool.rollout(self.model, self._datas, start, controls)
        else:
            states, _ = mujoco.rollout.rollout(self.model, self._datas[0], start, controls)
        states = states[:, sub - 1::sub]  # (K, N, nstate): the state at the end of each model step
        positions, velocities = self.task.joint_state_from_physics(states[..., self._qpos], states[..., self._qvel])
        pred_obs = self.task.observation(positions, velocities)  # (K, N, n)
        pred_reward = self.task.reward(pred_obs, actions)  # (K, N)
        return pred_obs, pred_reward

    def memory_bytes(self, samples: int, horizon: int) -> int:
        """Controls and full physics states (and sensor data) of every physics step of every candidate
        (what `mujoco.rollout` returns), plus the observations and joint arrays derived from them."""
        steps = samples * horizon * self.task.n_sub_steps * self.action_repeat  # physics steps in all
        per_step = self.task.action_size + self._state_size + self.model.nsensordata
        per_model_step = 2 * self.task.observation_size + 4 * len(self.task.joint_names) + 2
        return 8 * (steps * per_step + samples * horizon * per_model_step)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
