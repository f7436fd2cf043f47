"""Smooth reward shaping, vectorised over any leading shape.

`tolerance` has the semantics of dm_control's `rewards.tolerance` (1 inside the
bounds, falling off over `margin` outside them) for the sigmoids the shipped
tasks use, so that rewards computed from predicted observations equal the
rewards dm_control gives for the same physics state. Tests check the two
against each other.
"""

from __future__ import annotations

import numpy as np

SIGMOIDS = ("gaussian", "linear", "quadratic")


def _sigmoid(distance: np.ndarray, value_at_1: float, sigmoid: str) -> np.ndarray:
    """Maps a distance in units of the margin (>= 0) to (0, 1]; equals `value_at_1` at 1."""
    if sigmoid == "gaussian":
        if not 0.0 < value_at_1 < 1.0:
            raise ValueError(f"gaussian sigmoid needs 0 < value_at_margin < 1, got {value_at_1}")
        scale = np.sqrt(-2.0 * np.log(value_at_1))
        return np.exp(-0.5 * (distance * scale) ** 2)
    if not 0.0 <= value_at_1 < 1.0:
        raise ValueError(f"{sigmoid} sigmoid needs 0 <= value_at_margin < 1, got {value_at_1}")
    if sigmoid == "linear":
        scaled = distance * (1.0 - value_at_1)
        return np.where(np.abs(scaled) < 1.0, 1.0 - scaled, 0.0)
    if sigmoid == "quadratic":
        scaled = distance * np.sqrt(1.0 - value_at_1)
        return np.where(np.abs(scaled) < 1.0, 1.0 - scaled**2, 0.0)
    raise ValueError(f"unknown sigmoid {sigmoid!r}; choose one of {SIGMOIDS}")


def tolerance(
    x: np.ndarray,
    bounds: tuple[float, float] = (0.0, 0.0),
    margin: float = 0.0,
    sigmoid: str = "gaussian",
    value_at_margin: float = 0.1,
) -> np.ndarray:
    """1 where `lower <= x <= upper`, else a sigmoid of the distance to the nearest bound.

    Args:
      x: values, any shape.
      bounds: inclusive (lower, upper); either may be infinite.
      margin: distance outside the bounds at which the result equals
        `value_at_margin`; 0 makes the reward a hard indicator.
      sigmoid: 'gaussian', 'linear' or 'quadratic'.
      value_at_margin: the result at distance `margin`.

    Returns:
      float64 array shaped like `x`, values in [0, 1].
    """
    lower, upper = bounds
    if lower > upper:
        raise ValueError(f"lower bound {lower} exceeds upper bound {upper}")
    if margin < 0:
        raise ValueError(f"margin must be non-negative, got {margin}")
    x = np.asarray(x, dtype=np.float64)
    inside = (lower <= x) & (x <= upper)
    if margin == 0:
        return np.where(inside, 1.0, 0.0)
    distance = np.where(x < lower, lower - x, x - upper) / margin
    return np.where(inside, 1.0, _sigmoid(distance, value_at_margin, sigmoid))
