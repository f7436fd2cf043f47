"""Temporally correlated action noise for sampling candidate action sequences."""

from __future__ import annotations

import numpy as np


def brownian_noise(rng: np.random.Generator, samples: int, horizon: int, action_size: int,
                   variance: float = 2.0, start: np.ndarray | None = None) -> np.ndarray:
    """Brownian motion with drift 0, sampled at `horizon` steps and clipped to [-1, 1].

    The walk runs over the whole plan as over unit time: its increments have
    variance `variance / horizon` per step, so the walk's variance grows by
    `variance` across the horizon whatever its length (the paper's "drift 0,
    variance 2"). A walk that starts at 0 makes every first action tiny and
    MPC then fails (cartpole swing-up returns about 30 of 1000), so by default
    each walk starts at a point drawn uniformly from the action box: the first
    action alone covers [-1, 1].

    Args:
      rng: the generator all randomness comes from.
      samples: K, candidate sequences.
      horizon: N, steps per sequence.
      action_size: m.
      variance: variance of the walk's displacement over the horizon.
      start: (m,) or (K, m) starting points instead of uniform draws; the first
        action is then `start` plus one increment.

    Returns:
      (K, N, m) float64 actions in [-1, 1].
    """
    if variance < 0:
        raise ValueError(f"noise variance must be >= 0, got {variance}")
    step_std = np.sqrt(variance / horizon)
    increments = rng.normal(0.0, step_std, size=(samples, horizon, action_size))  # (K, N, m)
    if start is None:
        origin = rng.uniform(-1.0, 1.0, size=(samples, 1, action_size))  # (K, 1, m)
        increments[:, 0] = 0.0  # the uniform draw is itself the first action
    else:
        origin = np.broadcast_to(np.asarray(start, dtype=np.float64), (samples, action_size))[:, None]
    walk = origin + np.cumsum(increments, axis=1)  # (K, N, m)
    return np.clip(walk, -1.0, 1.0)
