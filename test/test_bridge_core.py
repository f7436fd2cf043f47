"""The bridge's core without ROS: episodes seeded like evaluation, exact torques, zero on bad or stale commands."""

import numpy as np
import pytest

from sim_bridge.bridge_core import BridgeConfig, BridgeCore
from tdm_control.config import ConfigError
from tdm_control.tasks.simulator import Simulator


def test_episodes_start_like_evaluation_and_steps_apply_the_torque(tasks):
    task = tasks["cartpole_swingup"]
    core = BridgeCore(BridgeConfig(seed=7, steps=5))
    for episode in range(2):
        assert core.begin_episode() == episode
        reference = Simulator(task, seed=7 + episode)
        reference.reset()
        for t in range(5):
            state = core.state()
            assert state.stamp_ns == t * 10_000_000 and state.names == task.joint_names
            positions, velocities, efforts = reference.joint_state()
            np.testing.assert_array_equal(state.positions, positions)
            np.testing.assert_array_equal(state.velocities, velocities)
            np.testing.assert_array_equal(state.efforts, efforts)
            torque = np.array([3.0 * (-1) ** t])
            assert core.step(torque) == reference.step(torque)
        assert core.episode_done and not core.all_done
        assert core.end_episode() == reference.episode_return
        assert len(core.rewards[episode]) == 5  # the reward of every step, for plots of an episode
        assert sum(core.rewards[episode]) == pytest.approx(reference.episode_return, abs=5 * 1e-4)
    assert len(core.returns) == 2


def test_all_done_after_the_configured_episodes():
    core = BridgeCore(BridgeConfig(episodes=2, steps=1))
    for _ in range(2):
        core.begin_episode()
        core.step(np.zeros(1))
        core.end_episode()
    assert core.all_done
    assert not BridgeCore(BridgeConfig(episodes=0)).all_done


def test_bad_commands_become_zero_torque_with_the_reason():
    core = BridgeCore(BridgeConfig())
    for command, reason in (([1.0, 2.0], "2 values; expected 1"), ([float("nan")], "slider=nan"),
                            ([float("inf")], "slider=inf")):
        torque, error = core.torque(command)
        np.testing.assert_array_equal(torque, [0.0])
        assert reason in error
    torque, error = core.torque([4.5])
    assert error is None and torque.tolist() == [4.5]


def test_realtime_applies_the_newest_command_until_it_is_too_old():
    core = BridgeCore(BridgeConfig(mode="realtime", command_timeout=0.25))
    torque, stale = core.realtime_torque(100.0)
    assert stale and torque.tolist() == [0.0]  # nothing received yet
    assert core.receive([2.0], now_s=100.0) is None
    assert core.realtime_torque(100.1) == (pytest.approx([2.0]), False)
    assert core.realtime_torque(100.25)[1] is False  # exactly the timeout: still fresh
    torque, stale = core.realtime_torque(100.2501)
    assert stale and torque.tolist() == [0.0]
    assert "non-finite" in core.receive([float("nan")], now_s=101.0)
    torque, stale = core.realtime_torque(101.05)
    assert not stale and torque.tolist() == [0.0]  # a bad command is a fresh zero command


@pytest.mark.parametrize("config, message", [
    (BridgeConfig(task="cartpole_swingdown"), "unknown task 'cartpole_swingdown'"),
    (BridgeConfig(steps=1001), "steps: must be <= 1000"),
    (BridgeConfig(joints=("hinge_1",)), "joints:"),
])
def test_bad_configuration_names_the_parameter(config, message):
    with pytest.raises(ConfigError, match=message):
        BridgeCore(config)


def test_joint_order_of_commands(tasks):
    joints = ("left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle")
    core = BridgeCore(BridgeConfig(task="walker_stand", joints=joints))
    torque, error = core.torque([1, 2, 3, 4, 5, 6])
    assert error is None and torque.tolist() == [4, 5, 6, 1, 2, 3]


def test_lookahead_between_save_and_restore_does_not_end_the_episode():
    # Regression: dm_control's own step counter was not part of the snapshot, so repeated
    # lookahead (open-loop prediction error) hit the time limit early and reset the physics.
    from tdm_control.tasks import make_task

    task = make_task("cartpole_swingup")
    simulator = Simulator(task, seed=0)
    simulator.reset()
    torque = task.action_to_torque(np.full(task.action_size, 0.3))
    rewards = []
    for _ in range(3):
        snapshot = simulator.save()
        for _ in range(task.episode_steps - 100):
            simulator.step(torque)
        simulator.restore(snapshot)
        rewards.append(simulator.step(torque))
    assert simulator.step_count == 3
    assert np.isfinite(rewards).all()
    positions, _, _ = simulator.joint_state()
    assert np.isfinite(positions).all()
