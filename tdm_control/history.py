"""The steps of the running episode that a sequence model conditions on."""

from __future__ import annotations

import collections

import numpy as np


class History:
    """Past steps `(o_t, r_t, a_t)` of one episode, oldest first, at most `capacity` kept.

    `r_t` is the reward received on arriving at `o_t` (0 at the episode's
    start), matching the token layout `[o_t, r_t, separator, a_t]`.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"history capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._steps: collections.deque = collections.deque(maxlen=capacity)
        self.total_steps = 0
        """Steps appended since the last clear, including those dropped for capacity."""
        self.current_reward = 0.0
        """r_t, the reward received on arriving at the observation being planned from."""

    def append(self, obs: np.ndarray, reward: float, action: np.ndarray) -> None:
        """Records one executed step: obs (n,), reward (scalar), action (m,) in [-1, 1]."""
        self._steps.append((np.array(obs, dtype=np.float64), float(reward),
                            np.array(action, dtype=np.float64)))
        self.total_steps += 1

    def clear(self) -> None:
        """Forgets the episode."""
        self._steps.clear()
        self.total_steps = 0
        self.current_reward = 0.0

    def __len__(self) -> int:
        return len(self._steps)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """observations (T, n), rewards (T,), actions (T, m); T = len(self), may be 0."""
        if not self._steps:
            return np.zeros((0, 0)), np.zeros(0), np.zeros((0, 0))
        obs, rewards, actions = zip(*self._steps)
        return np.stack(obs), np.array(rewards), np.stack(actions)
