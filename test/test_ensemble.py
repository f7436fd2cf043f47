"""An ensemble of exported models plans on their mean prediction; mismatched members are refused."""

import numpy as np
import pytest

from tdm_control.config import ConfigError
from tdm_control.dynamics import make_dynamics
from tdm_control.history import History
from tdm_control.planning import ObservationReward, make_planner

TDM = "models/cartpole_swingup_tdm.onnx"
MLP = "models/cartpole_swingup_mlp_delta.onnx"


@pytest.fixture
def start(tasks):
    """A cartpole observation a few steps into an episode, and that episode's history."""
    task = tasks["cartpole_swingup"]
    history = History(8)
    rng = np.random.default_rng(0)
    obs = np.array([0.1, -0.95, 0.3, 0.2, -0.5])
    for _ in range(4):
        history.append(obs, 0.1, rng.uniform(-1, 1, task.action_size))
        obs = obs + rng.normal(0, 0.05, 5)
    return task, history, obs


def test_ensemble_predicts_the_mean_of_its_members(start):
    task, history, obs = start
    tdm, mlp = make_dynamics(TDM, task), make_dynamics(MLP, task)
    ensemble = make_dynamics(f"{TDM}+{MLP}", task)
    assert (ensemble.action_repeat, ensemble.history_steps, ensemble.proposes) == (2, tdm.history_steps, True)
    actions = np.random.default_rng(1).uniform(-1, 1, (6, 5, task.action_size))  # (K, N, m)
    (obs_a, rew_a), (obs_b, rew_b) = tdm.rollout(history, obs, actions), mlp.rollout(history, obs, actions)
    pred_obs, pred_reward = ensemble.rollout(history, obs, actions)
    np.testing.assert_allclose(pred_obs, (obs_a + obs_b) / 2)
    np.testing.assert_allclose(pred_reward, (rew_a + rew_b) / 2)
    assert not np.allclose(obs_a, obs_b)  # the members disagree, so the mean is not either one

    # Proposals come from the first member; every member judges the same actions.
    noise = np.random.default_rng(2).normal(0, 0.2, (6, 5, task.action_size))
    own_obs, _, own_actions = tdm.rollout_with_proposals(history, obs, noise)
    pred_obs, pred_reward, actions = ensemble.rollout_with_proposals(history, obs, noise)
    np.testing.assert_array_equal(actions, own_actions)
    np.testing.assert_allclose(pred_obs, (own_obs + mlp.rollout(history, obs, actions)[0]) / 2)
    planner = make_planner("proposal", ensemble, ObservationReward(task.reward), task.action_size,
                           np.random.default_rng(0), {"samples": 8, "horizon": 5})
    action = planner.plan(obs, history)
    assert action.shape == (1,) and np.all(np.abs(action) <= 1)
    for model in (tdm, mlp, ensemble):
        model.close()


def test_ensemble_refuses_members_it_cannot_combine(start, tiny_model):
    task = start[0]
    with pytest.raises(ConfigError, match="join exported models only"):
        make_dynamics(f"mujoco+{TDM}", task)
    with pytest.raises(ConfigError, match="join exported models only"):
        make_dynamics(f"{TDM}+", task)
    _, tiny, _ = tiny_model  # trained at action repeat 1; the shipped model at 2
    with pytest.raises(ConfigError, match="different action repeats"):
        make_dynamics(f"{TDM}+{tiny}", task)
    with pytest.raises(ConfigError, match="another task|made for|walker"):
        make_dynamics(f"{TDM}+models/walker_stand_tdm_v3.onnx", task)
