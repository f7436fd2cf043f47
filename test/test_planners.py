"""Planners: deterministic for a seed, actions in bounds, better than the mean action on a known problem."""

import numpy as np
import pytest
from toy_dynamics import ToyDynamics, closed_loop_return, reward

from tdm_control.config import ConfigError
from tdm_control.dynamics.mujoco_model import MujocoDynamics
from tdm_control.history import History
from tdm_control.planning import PLANNERS, ObservationReward, make_planner, planner_config

TOY_PARAMS = {
    "random_shooting": {"samples": 64, "horizon": 15},
    "warm_start": {"samples": 64, "horizon": 15},
    "proposal": {"samples": 64, "horizon": 15, "noise_variance": 0.5},
    "cem": {"samples": 32, "horizon": 15, "iterations": 3, "elites": 6},
    "mppi": {"samples": 32, "horizon": 15, "iterations": 3, "temperature": 0.3},
    "cem_with_proposals": {"samples": 32, "horizon": 15, "iterations": 3, "elites": 6, "proposal_share": 0.25},
}


def toy_planner(name: str, seed: int):
    planner = name.replace("_with_proposals", "")
    return make_planner(planner, ToyDynamics(), ObservationReward(reward), 1, np.random.default_rng(seed),
                        TOY_PARAMS[name])


def toy_policy(planner):
    return lambda obs: planner.plan(obs, History(0))


@pytest.mark.parametrize("name", sorted(TOY_PARAMS))
def test_same_seed_same_actions_and_bounds(name):
    _, a = closed_loop_return(toy_policy(toy_planner(name, 4)), steps=8)
    _, b = closed_loop_return(toy_policy(toy_planner(name, 4)), steps=8)
    _, c = closed_loop_return(toy_policy(toy_planner(name, 5)), steps=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (8, 1) and np.all(np.abs(a) <= 1.0)


@pytest.mark.parametrize("name", sorted(TOY_PARAMS))
def test_planner_beats_the_mean_action(name):
    mean_action_return, _ = closed_loop_return(lambda obs: np.zeros(1))
    planned_return, _ = closed_loop_return(toy_policy(toy_planner(name, 0)))
    # Holding still earns exp(-1) = 0.37 a step; reaching the target earns up to 1.
    assert mean_action_return == pytest.approx(40 * np.exp(-1.0))
    assert planned_return > mean_action_return + 8.0


def test_every_registered_planner_is_tested():
    assert set(PLANNERS) <= {name.replace("_with_proposals", "") for name in TOY_PARAMS}


def test_proposal_planning_needs_a_model_that_proposes(tasks):
    task = tasks["cartpole_swingup"]
    dynamics = MujocoDynamics(task, nthread=1)
    for name, params in [("proposal", {}), ("cem", {"proposal_share": 0.2})]:
        with pytest.raises(ConfigError, match="needs a model that proposes actions"):
            make_planner(name, dynamics, ObservationReward(task.reward), 1, np.random.default_rng(0), params)


def mujoco_planner(task, name, seed, **params):
    return make_planner(name, MujocoDynamics(task, nthread=1), ObservationReward(task.reward), task.action_size,
                        np.random.default_rng(seed), {"samples": 16, "horizon": 10, **params})


def test_planners_on_the_true_model_stay_in_bounds(tasks):
    task = tasks["walker_stand"]
    env = task.make_environment(0)
    env.reset()
    data = env.physics.data
    obs = task.observation(*task.joint_state_from_physics(data.qpos.copy(), data.qvel.copy()))
    for name in ("random_shooting", "warm_start", "cem", "mppi"):
        planner = mujoco_planner(task, name, 0)
        action = planner.plan(obs, History(0))
        assert action.shape == (6,) and np.all(np.abs(action) <= 1.0)
        assert planner.last.plan.shape == (10, 6)
        assert 0.0 <= planner.last.predicted_return <= 10.0  # 10 steps of rewards in [0, 1]


def test_warm_start_keeps_the_shifted_best_plan(tasks):
    task = tasks["cartpole_swingup"]
    planner = mujoco_planner(task, "warm_start", 0)
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
    planner = mujoco_planner(task, "random_shooting", 2)
    obs = np.array([0.0, -1.0, 0.0, 0.0, 0.0])
    action = planner.plan(obs, History(0))
    np.testing.assert_array_equal(action, planner.last.plan[0])
    planner.rng = np.random.default_rng(2)
    returns = planner.evaluate(obs, History(0), planner.sample())
    assert planner.last.predicted_return == pytest.approx(returns.max())


def test_planner_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="samlpes.*did you mean 'samples'"):
        planner_config("random_shooting", {"samlpes": 3})
    with pytest.raises(ConfigError, match="horizon"):
        planner_config("random_shooting", {"horizon": 0})
    with pytest.raises(ConfigError, match="expected an integer"):
        planner_config("random_shooting", {"samples": "many"})
    with pytest.raises(ConfigError, match="elites"):
        planner_config("cem", {"samples": 4, "elites": 9})
    with pytest.raises(ConfigError, match="choose one of"):
        planner_config("simulated_annealing", {})


def test_controller_holds_actions_between_plans(tasks):
    from tdm_control.controller import Controller
    from tdm_control.tasks.simulator import Simulator

    task = tasks["cartpole_swingup"]
    dynamics = MujocoDynamics(task, nthread=1, action_repeat=2)
    planner = make_planner("random_shooting", dynamics, ObservationReward(task.reward), 1,
                           np.random.default_rng(0), {"samples": 8, "horizon": 5})
    controller = Controller(task, planner, history_steps=10)
    simulator = Simulator(task, seed=0)
    simulator.reset()
    controller.reset()
    actions, planned = [], []
    for _ in range(10):
        positions, velocities, _ = simulator.joint_state()
        action, torque = controller.act(positions, velocities)
        simulator.step(torque)
        actions.append(action.copy())
        planned.append(controller.planned)
    assert planned == [True, False] * 5
    for t in range(0, 10, 2):
        np.testing.assert_array_equal(actions[t], actions[t + 1])
    assert len(controller.history) == 5  # one history step per held action


class RecordingToy(ToyDynamics):
    """The toy model, keeping every batch of candidates it was asked to roll out."""

    def __init__(self) -> None:
        self.batches = []

    def rollout(self, history, obs, actions):
        self.batches.append(actions.copy())
        return super().rollout(history, obs, actions)


@pytest.mark.parametrize("name", ["random_shooting", "warm_start", "cem", "mppi"])
def test_continue_from_fixes_the_first_actions_and_warm_starts_from_the_guess(name):
    """Planning beside control: every candidate starts with the actions already committed, the warm start is
    the guess (the previous plan shifted by the time that passed), and the committed sequence keeps both."""
    dynamics = RecordingToy()
    planner = make_planner(name, dynamics, ObservationReward(reward), 1, np.random.default_rng(0), TOY_PARAMS[name])
    fixed = np.array([[0.3], [-0.2], [0.1]])  # (F, m)
    guess = np.linspace(-0.9, 0.9, 15)[:, None]  # (N, m)
    planner.continue_from(guess, fixed)
    action = planner.plan(np.zeros(2), History(0))
    for batch in dynamics.batches:
        np.testing.assert_array_equal(batch[:, :3], np.broadcast_to(fixed, (len(batch), 3, 1)))
    if name != "random_shooting":  # the warm start is a candidate (cem/mppi: the first mean)
        np.testing.assert_array_equal(dynamics.batches[0][0, 3:], guess[3:])
    sequence = planner.sequence()
    assert sequence.shape == (15, 1) and np.all(np.abs(sequence) <= 1.0)
    np.testing.assert_array_equal(sequence[0], action)
    np.testing.assert_allclose(sequence[:3], fixed, atol=1e-12)  # mppi's weighted mean: rounding only
    planner.reset()
    dynamics.batches.clear()
    planner.plan(np.zeros(2), History(0))  # reset forgets them: free candidates again
    assert not all(np.array_equal(b[:, :3], np.broadcast_to(fixed, (len(b), 3, 1))) for b in dynamics.batches)
