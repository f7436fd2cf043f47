"""The tokenizer: Gato mu-law and uniform bins, round trips within the quantisation bound."""

import numpy as np
import pytest

from tdm_control.tokenizer import Role, Tokenizer


@pytest.fixture
def tok():
    return Tokenizer(observation_size=5, action_size=2)


def test_round_trip_within_quantisation_bound(tok):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 5000), rng.normal(0, 30, 5000), rng.uniform(-256, 256, 1000),
                        [0.0, 1e-4, -1e-4, 255.9, -255.9]])
    error = np.abs(tok.decode(tok.encode(x)) - x)
    bound = tok.quantisation_bound(x)
    assert np.all(error <= bound)
    # The bound is tight near 0 and coarse far out: mu-law spends bins where values are common.
    assert tok.quantisation_bound(np.array([0.01]))[0] < 5e-4
    assert tok.quantisation_bound(np.array([1.0]))[0] < 0.015
    assert tok.quantisation_bound(np.array([100.0]))[0] > 0.5


def test_mu_law_matches_the_formula(tok):
    x = np.array([-300.0, -3.0, -0.2, 0.0, 0.5, 7.0, 256.0])
    expected = np.clip(np.sign(x) * np.log(np.abs(x) * 100 + 1) / np.log(256 * 100 + 1), -1, 1)
    np.testing.assert_allclose(tok.compand(x), expected, rtol=1e-12)
    np.testing.assert_allclose(tok.expand(tok.compand(x[1:-1])), x[1:-1], rtol=1e-9, atol=1e-12)


def test_bins_are_uniform_and_saturate(tok):
    assert tok.encode(np.array([-1e9]))[0] == 0
    assert tok.encode(np.array([1e9]))[0] == 1023
    assert tok.encode(np.array([0.0]))[0] == 512
    ids = tok.encode(np.linspace(-256, 256, 100001))
    assert ids.min() == 0 and ids.max() == 1023 and np.all(np.diff(ids) >= 0)
    with pytest.raises(ValueError, match="separator"):
        tok.decode(np.array([tok.separator]))


def test_vectorised_over_batch_time_dim(tok):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2, (3, 4, 5))  # (B, T, D)
    ids = tok.encode(x)
    assert ids.shape == (3, 4, 5) and ids.dtype == np.int64
    np.testing.assert_array_equal(ids[1, 2], tok.encode(x[1, 2]))
    assert tok.decode(ids).shape == (3, 4, 5)


def test_step_layout(tok):
    assert tok.step_tokens == 5 + 1 + 1 + 2 and tok.vocab_size == 1025 and tok.separator == 1024
    roles = tok.roles()
    assert list(roles) == [Role.OBSERVATION] * 5 + [Role.REWARD, Role.SEPARATOR] + [Role.ACTION] * 2
    rng = np.random.default_rng(2)
    obs, rew, act = rng.normal(size=(2, 3, 5)), rng.uniform(size=(2, 3)), rng.uniform(-1, 1, (2, 3, 2))
    tokens = tok.tokenize_steps(obs, rew, act)
    assert tokens.shape == (2, 27)
    steps = tokens.reshape(2, 3, 9)
    assert np.all(steps[..., 6] == tok.separator)
    np.testing.assert_array_equal(steps[..., :5], tok.encode(obs))
    np.testing.assert_array_equal(steps[..., 5], tok.encode(rew))
    np.testing.assert_array_equal(steps[..., 7:], tok.encode(act))
    o, r, a = tok.detokenize_steps(tokens)
    assert np.all(np.abs(o - obs) <= tok.quantisation_bound(obs))
    assert np.all(np.abs(a - act) <= tok.quantisation_bound(act))


def test_wrong_sizes_are_rejected(tok):
    with pytest.raises(ValueError, match="n=5"):
        tok.tokenize_steps(np.zeros((1, 2, 4)), np.zeros((1, 2)), np.zeros((1, 2, 2)))
