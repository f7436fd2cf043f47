"""Baseline one-step models (MLPs predicting observation deltas) exported to ONNX."""

from __future__ import annotations

import numpy as np

from tdm_control.dynamics.base import Dynamics
from tdm_control.history import History
from tdm_control.tasks import Task


class OnnxMLP(Dynamics):
    """Answers `Dynamics.rollout` by applying a one-step model N times to all K candidates at once.

    Graph: obs (B, n) float32, action (B, m) float32 -> next_obs (B, n), reward (B,).
    Markov: the history is not used.
    """

    def __init__(self, session, metadata: dict, path: str, task: Task) -> None:
        self.session, self.metadata, self.path, self.task = session, metadata, path, task
        self.name = metadata["kind"]
        self.action_repeat = int(metadata.get("action_repeat", 1))
        self.providers = session.get_providers()

    def rollout(self, history: History, obs: np.ndarray, actions: np.ndarray):
        actions = self.check_actions(actions, self.task.action_size, np.float32)
        k, horizon, _ = actions.shape
        state = np.broadcast_to(np.asarray(obs, dtype=np.float32), (k, self.task.observation_size)).copy()
        pred_obs = np.empty((k, horizon, self.task.observation_size))
        pred_reward = np.empty((k, horizon))
        for t in range(horizon):
            state, reward = self.session.run(None, {"obs": state, "action": np.ascontiguousarray(actions[:, t])})
            pred_obs[:, t], pred_reward[:, t] = state, reward
        return pred_obs, pred_reward
