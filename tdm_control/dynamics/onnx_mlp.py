"""Baseline one-step models (MLPs predicting observation deltas) exported to ONNX."""

from __future__ import annotations

import numpy as np

from tdm_control.dynamics import metadata as model_metadata
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
        self.warnings = model_metadata.integrity_warnings(metadata, path)

    def memory_bytes(self, samples: int, horizon: int) -> int:
        """float64 predictions of every step, and one step's float32 inputs and outputs (with ORT's copies)."""
        n, m = self.task.observation_size, self.task.action_size
        return 8 * samples * horizon * (n + 1) + 4 * 4 * samples * (2 * n + m + 1)

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
