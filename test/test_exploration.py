"""The data policy (tdm_control.exploration): one home for `tdm-train collect` and the planner node."""

import dataclasses

import numpy as np
import pytest
from test_planner_core import CONFIG, NAMES, stamp, states

from tdm_control.config import ConfigError
from tdm_control.exploration import BROWNIAN, MPC, ExplorationConfig, Explorer, exploration_config
from tdm_control.nodes.planner_core import PlannerCore


def one_mix(mpc_share, action_noise=0.0, segment_steps=5):
    return ExplorationConfig(segment_steps, 2.0, ({"weight": 1.0, "mpc_share": mpc_share,
                                                   "action_noise": action_noise},))


def test_segments_keep_one_behaviour_and_an_episode_is_a_function_of_its_seed():
    config = ExplorationConfig(segment_steps=4, mixes=({"weight": 1.0, "mpc_share": 0.5, "action_noise": 0.2},))

    def episode(seed):
        explorer = Explorer(config, np.random.default_rng(seed), action_size=2, steps=40)
        plan = lambda: np.array([0.25, -0.25])  # noqa: E731
        return [(explorer.act(t, plan).tolist(), explorer.behaviour) for t in range(40)]

    first = episode(7)
    assert first == episode(7) and first != episode(8)
    behaviours = [b for _, b in first]
    for start in range(0, 40, 4):
        assert len(set(behaviours[start:start + 4])) == 1  # a segment keeps its behaviour
    assert {MPC, BROWNIAN} == set(behaviours)
    actions = np.array([a for a, _ in first])
    assert np.all(np.abs(actions) <= 1.0)
    planned = actions[[b == MPC for b in behaviours]]
    assert not np.allclose(planned, [0.25, -0.25]) and np.allclose(planned, [0.25, -0.25], atol=1.0)  # noisy plans


def test_a_brownian_mix_never_plans_and_a_noiseless_mpc_mix_plays_the_plan():
    calls = []

    def plan():
        calls.append(1)
        return np.array([2.0])  # clipped to the action box

    brownian = Explorer(one_mix(0.0), np.random.default_rng(0), action_size=1)
    walk = [brownian.act(t, plan)[0] for t in range(20)]
    assert not calls and len(set(walk)) > 5 and max(map(abs, walk)) <= 1.0
    mpc = Explorer(one_mix(1.0), np.random.default_rng(0), action_size=1)
    assert [mpc.act(t, plan)[0] for t in range(20)] == [1.0] * 20 and len(calls) == 20


@pytest.mark.parametrize("parameters, message", [
    ({"segment_step": 10}, "exploration.segment_step: unknown key (did you mean 'segment_steps'?)"),
    ({"weights": [1.0, 1.0]}, "weights, mpc_shares and action_noises give one value per mix: got 2, 3 and 3"),
    ({"mpc_shares": [1.5, 0.5, 0.0]}, "mpc_share: must be in [0, 1], got 1.5"),
    ({"weights": [0.0, 0.0, 0.0]}, "every weight is 0"),
    ({"segment_steps": 0}, "segment_steps: must be >= 1, got 0"),
])
def test_bad_exploration_parameters_are_named(parameters, message):
    with pytest.raises(ConfigError) as e:
        exploration_config(parameters)
    assert message in str(e.value)


def test_the_planner_node_explores_when_asked_and_refuses_a_misspelled_key(tasks):
    """The node's `exploration` parameters: an MPC-only mix without noise answers as plain MPC does,
    a Brownian-only mix answers with the walk (never a plan), and a bad key means zero torque."""
    task = tasks["cartpole_swingup"]
    trajectory = states(task, seed=0, n=6)

    def commands(config):
        core = PlannerCore(config)
        core.set_episode(0)
        answers = [core.on_joint_state(stamp(t), NAMES, q.tolist(), v.tolist()) for t, (q, v) in enumerate(trajectory)]
        core.close()
        return answers

    plain = [a.command.tolist() for a in commands(CONFIG)]
    mpc_only = {"weights": [1.0], "mpc_shares": [1.0], "action_noises": [0.0]}
    assert [a.command.tolist() for a in commands(dataclasses.replace(CONFIG, exploration=mpc_only))] == plain
    brownian_only = {"weights": [1.0], "mpc_shares": [0.0], "action_noises": [0.0]}
    walk = commands(dataclasses.replace(CONFIG, exploration=brownian_only))
    assert all(a.error is None for a in walk) and all(a.command.tolist() != p for a, p in zip(walk, plain))
    assert all(np.isnan(a.predicted_return) for a in walk)  # a walk has no predicted return
    assert all(np.isfinite(a.predicted_return) for a in commands(dataclasses.replace(CONFIG, exploration=mpc_only)))
    assert max(abs(a.command[0]) for a in walk) <= task.action_to_torque(np.ones(1))[0]
    # the start-up line says whether the node records exploratory data
    assert "exploration" not in PlannerCore(CONFIG).describe()
    described = PlannerCore(dataclasses.replace(CONFIG, exploration=brownian_only)).describe()
    assert "exploration: segments of 25 decisions" in described and "weight 1: MPC share 0, noise 0" in described
    bad = commands(dataclasses.replace(CONFIG, exploration={"segment_step": 10}))
    assert all(a.command.tolist() == [0.0] and "exploration.segment_step: unknown key" in a.error for a in bad)
