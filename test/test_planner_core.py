"""The planner's core without ROS: one answer per state, the evaluation's seeds, zero torque on anything bad."""

import dataclasses
import math

import numpy as np
import pytest
from ros_helpers import models_a_cartpole_planner_must_refuse

from tdm_control.controller import build_controller
from tdm_control.nodes.planner_core import PlannerCore, PlannerNodeConfig
from tdm_control.tasks.simulator import Simulator

SMALL = {"samples": 8, "horizon": 5}
CONFIG = PlannerNodeConfig(planner_params=SMALL, seed=3, joints=("slider",))
NAMES = ("slider", "hinge_1")


def states(task, seed, n):
    """n joint states of an episode driven by a fixed torque sequence: [(positions, velocities)]."""
    simulator = Simulator(task, seed=seed)
    simulator.reset()
    out = []
    for t in range(n):
        q, v, _ = simulator.joint_state()
        out.append((q, v))
        simulator.step(np.array([math.sin(t)]))
    return out


def stamp(t):
    return t * 10_000_000


def test_answers_equal_the_evaluation_controller_for_each_episode(tasks):
    task = tasks["cartpole_swingup"]
    core = PlannerCore(CONFIG)
    assert core.error is None
    for episode in (0, 1):
        core.set_episode(episode)
        reference = build_controller(CONFIG, task, episode)
        reference.reset()
        for t, (q, v) in enumerate(states(task, seed=episode, n=4)):
            answer = core.on_joint_state(stamp(t), NAMES, q.tolist(), v.tolist())
            _, torque = reference.act(q, v)
            assert answer.error is None and answer.episode == episode
            assert answer.command.tolist() == torque.tolist()  # exact: float64 end to end
            assert answer.latency_s > 0 and np.isfinite(answer.predicted_return)
    core.close()


def test_each_state_is_answered_once_and_waits_for_its_episode(tasks):
    task = tasks["cartpole_swingup"]
    (q0, v0), (q1, v1) = states(task, seed=0, n=2)
    core = PlannerCore(CONFIG)
    assert core.on_joint_state(0, NAMES, q0, v0) is None  # episode not announced yet
    core.set_episode(0)
    assert core.on_joint_state(0, NAMES, q0, v0) is not None
    assert core.on_joint_state(0, NAMES, q0, v0) is None  # a re-send
    assert core.on_joint_state(stamp(1), NAMES, q1, v1) is not None
    # The next episode's first state can overtake its announcement: it is not answered...
    assert core.on_joint_state(0, NAMES, q0, v0) is None
    core.set_episode(1)
    # ...until the announcement is in; then it is answered as episode 1's first state, once.
    answer = core.on_joint_state(0, NAMES, q0, v0)
    assert answer.episode == 1 and answer.error is None
    assert core.on_joint_state(0, NAMES, q0, v0) is None
    core.close()


def test_a_restarted_bridge_announcing_episode_0_again_starts_over(tasks):
    task = tasks["cartpole_swingup"]
    (q0, v0), (q1, v1) = states(task, seed=0, n=2)
    core = PlannerCore(CONFIG)
    core.set_episode(0)
    first = core.on_joint_state(0, NAMES, q0, v0)
    core.on_joint_state(stamp(1), NAMES, q1, v1)
    core.set_episode(0)  # the new bridge's announcement
    again = core.on_joint_state(0, NAMES, q0, v0)
    assert again is not None and again.command.tolist() == first.command.tolist()  # same seed, fresh history
    core.close()


def test_without_an_episode_topic_time_going_back_starts_an_episode(tasks):
    task = tasks["cartpole_swingup"]
    (q0, v0), (q1, v1) = states(task, seed=0, n=2)
    core = PlannerCore(dataclasses.replace(CONFIG, episode_topic=""))
    assert core.on_joint_state(0, NAMES, q0, v0).episode == 0
    assert core.on_joint_state(stamp(1), NAMES, q1, v1).episode == 0
    assert core.on_joint_state(stamp(1), NAMES, q1, v1) is None
    assert core.on_joint_state(0, NAMES, q0, v0).episode == 1
    core.close()


@pytest.mark.parametrize("names, positions, velocities, message", [
    (["hinge_1"], [0.0], [0.0], "missing joint(s) ['slider']"),
    (NAMES, [0.0, float("nan")], [0.0, 0.0], "position[hinge_1]=nan"),
    (NAMES, [0.0, 0.0], [0.0, float("-inf")], "velocity[hinge_1]=-inf"),
    (NAMES, [0.0, 0.0], [], "2 names, 2 positions and 0 velocities"),
])
def test_bad_joint_states_get_zero_torque_and_the_reason(names, positions, velocities, message):
    core = PlannerCore(CONFIG)
    core.set_episode(0)
    answer = core.on_joint_state(0, names, positions, velocities)
    assert answer.command.tolist() == [0.0] and message in answer.error
    good = core.on_joint_state(stamp(1), NAMES, [0.0, 3.0], [0.0, 0.0])
    assert good.error is None and good.command.tolist() != [0.0]  # the node goes on planning
    core.close()


@pytest.mark.parametrize("config, message", [
    (dataclasses.replace(CONFIG, task="cartpole_swingdown"), "task: unknown task 'cartpole_swingdown'"),
    (dataclasses.replace(CONFIG, planner="annealing"), "planner/planner_params: unknown planner 'annealing'"),
    (dataclasses.replace(CONFIG, planner_params={"samlpes": 8}), "did you mean 'samples'"),
    (dataclasses.replace(CONFIG, joints=("hinge_1",)), "joints: ['hinge_1'] must list each actuated joint"),
    (dataclasses.replace(CONFIG, model="models/cartpole_swingup_tdm.onnx+models/walker_stand_tdm_v3.onnx"),
     "models/walker_stand_tdm_v3.onnx was made for task 'walker_stand'"),
])
def test_bad_configuration_means_zero_torque_for_every_state(config, message):
    core = PlannerCore(config)
    assert message in core.error
    core.set_episode(0)
    for t in range(3):
        answer = core.on_joint_state(stamp(t), NAMES, [0.0, 3.0], [0.0, 0.0])
        assert answer.command.tolist() == [0.0] and message in answer.error
    core.close()


def test_models_that_cannot_plan_for_the_task_mean_zero_torque(tmp_path, walker_model):
    for model, detail in models_a_cartpole_planner_must_refuse(tmp_path, walker_model):
        core = PlannerCore(dataclasses.replace(CONFIG, model=model))
        assert core.error is not None and core.error.startswith("model: ") and detail in core.error, core.error
        core.set_episode(0)
        answer = core.on_joint_state(0, NAMES, [0.0, 3.0], [0.0, 0.0])
        assert answer.command.tolist() == [0.0] and "model: " in answer.error


def test_a_parameter_error_from_the_node_is_kept():
    core = PlannerCore(CONFIG, parameter_error="bad parameter sampels: unknown key")
    core.set_episode(0)
    answer = core.on_joint_state(0, NAMES, [0.0, 3.0], [0.0, 0.0])
    assert answer.command.tolist() == [0.0] and "sampels" in answer.error
