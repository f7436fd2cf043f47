"""Brownian action noise: zero mean, clipped, correlated in time, first actions covering the box."""

import numpy as np
import pytest

from tdm_control.planning.noise import brownian_noise


def test_shape_bounds_and_zero_mean():
    rng = np.random.default_rng(0)
    noise = brownian_noise(rng, 20000, 30, 2, variance=2.0)
    assert noise.shape == (20000, 30, 2)
    assert noise.min() >= -1.0 and noise.max() <= 1.0
    # Symmetric walks: the mean is 0 at every step (std of the mean ~ 0.7/sqrt(20000) = 0.005).
    assert np.abs(noise.mean(axis=0)).max() < 0.03


def test_clipping_saturates_long_walks():
    rng = np.random.default_rng(1)
    noise = brownian_noise(rng, 5000, 50, 1, variance=2.0)
    saturated = np.mean(np.abs(noise[:, -1]) == 1.0)
    # By the horizon's end the walk (start U[-1,1] plus N(0, 2)) lies outside the box more often than not.
    assert 0.4 < saturated < 0.8


def test_first_action_covers_the_box():
    rng = np.random.default_rng(2)
    first = brownian_noise(rng, 20000, 50, 1, variance=2.0)[:, 0, 0]
    histogram, _ = np.histogram(first, bins=10, range=(-1, 1))
    # Uniform over [-1, 1]: every tenth of the box gets about 2000 draws.
    assert histogram.min() > 1700 and histogram.max() < 2300
    assert np.mean(np.abs(first) > 0.9) > 0.08


def test_temporal_correlation_and_increment_variance():
    rng = np.random.default_rng(3)
    variance, horizon = 0.1, 40  # small enough that clipping is rare (end std 0.32)
    noise = brownian_noise(rng, 20000, horizon, 1, variance=variance, start=np.zeros(1))[..., 0]
    increments = np.diff(noise, axis=1)
    assert increments.var() == pytest.approx(variance / horizon, rel=0.05)
    # Neighbouring actions are strongly correlated; white noise would give ~0.
    lag1 = np.corrcoef(noise[:, 10], noise[:, 11])[0, 1]
    assert lag1 > 0.9
    # Brownian: Var(x_k) grows linearly in k.
    assert noise[:, 19].var() / noise[:, 9].var() == pytest.approx(2.0, rel=0.1)


def test_seeded_generators_give_identical_noise():
    a = brownian_noise(np.random.default_rng(7), 8, 10, 3)
    b = brownian_noise(np.random.default_rng(7), 8, 10, 3)
    np.testing.assert_array_equal(a, b)


def test_negative_variance_is_rejected():
    with pytest.raises(ValueError, match="variance"):
        brownian_noise(np.random.default_rng(0), 2, 2, 1, variance=-1.0)
