"""Planners: deterministic for a seed, actions in bounds, warm starts that keep the best plan."""

import numpy as np
import pytest

from tdm_control.config import ConfigError
from tdm_control.dynamics.mujoco_model import MujocoDynamics
from tdm_control.history import History
from tdm_control.planning import PLANNERS, ObservationReward, make_planner, planner_config

SMALL = {"samples": 16, "horizon": 10}


def make(task, name, seed, **params):
    dynamics = MujocoDynamics(task, nthread=1)
    return make_planner(name, dynamics, ObservationReward(task.reward), task.action_size,
                        np.random.default_rng(seed), {**SMALL, **params})


def run(planner, task, steps=5, seed=0):
    env = task.make_environment(seed)
    env.reset()
    actions = []
    for _ in range(steps):
        data = env.physics.data
        obs = task.observation(*task.joint_state_from_physics(data.qpos.copy(), data.qvel.copy()))
        action = planner.plan(obs, History(0))
        actions.append(action)
        env.step(action)
    return np.array(actions)


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_same_seed_same_actions(tasks, name):
    task = tasks["cartpole_swingup"]
    a = run(make(task, name, seed=4), task)
    b = run(make(task, name, seed=4), task)
    c = run(make(task, name, seed=5), task)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_actions_within_bounds_and_info_recorded(tasks, name):
    task = tasks["walker_stand"]
    planner = make(task, name, seed=0)
    actions = run(planner, task, steps=3)
    assert actions.shape == (3, 6)
    assert np.all(np.abs(actions) <= 1.0)
    assert planner.last.plan.shape == (10, 6)
    assert 0.0 <= planner.last.predicted_return <= 10.0  # 10 steps of rewards in [0, 1]


def test_warm_start_keeps_the_shifted_best_plan(tasks):
    task = tasks["cartpole_swingup"]
    planner = make(task, "warm_start", seed=0)
    obs = np.array([0.0, -1.0, 0.0, 0.0, 0.0])
    planner.plan(obs, History(0))
    previous = planner.last.plan.copy()
    candidates = planner.sample()
    np.testing.assert_array_equal(candidates[0, :-1], previous[1:])
    np.testing.assert_array_equal(candidates[0, -1], previous[-1])
    # Half the candidates stay near the previous plan; the rest are fresh.
    near = np.abs(candidates[1:8] - candidates[0]).mean()
    fresh = np.abs(candidates[8:] - candidates[0]).mean()
    assert near < fresh
    planner.reset()
    assert planner.last is None


def test_best_candidate_is_chosen_and_its_first_action_applied(tasks):
    task = tasks["cartpole_swingup"]
    planner = make(task, "random_shooting", seed=2)
    obs = np.array([0.0, -1.0, 0.0, 0.0, 0.0])
    action = planner.plan(obs, History(0))
    np.testing.assert_array_equal(action, planner.last.plan[0])
    # No other candidate of the same draw scores higher.
    planner.rng = np.random.default_rng(2)
    candidates = planner.sample()
    returns = planner.evaluate(obs, History(0), candidates)
    assert planner.last.predicted_return == pytest.approx(returns.max())


def test_planner_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="samlpes.*did you mean 'samples'"):
        planner_config("random_shooting", {"samlpes": 3})
    with pytest.raises(ConfigError, match="horizon"):
        planner_config("random_shooting", {"horizon": 0})
    with pytest.raises(ConfigError, match="expected an integer"):
        planner_config("random_shooting", {"samples": "many"})
    with pytest.raises(ConfigError, match="choose one of"):
        planner_config("simulated_annealing", {})
