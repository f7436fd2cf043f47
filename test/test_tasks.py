"""Observations and rewards built from joint states equal dm_control's, for every task."""

import numpy as np
import pytest
from dm_control.rl.control import flatten_observation

from tdm_control.config import ConfigError
from tdm_control.tasks import TASKS, make_task

TASK_NAMES = sorted(TASKS)


def random_states(task, env, rng, count):
    """Yields (dm_control timestep, action) over random states: episode starts plus random-action visits."""
    for i in range(count):
        if i % 25 == 0:
            env.reset()
        physics = env.physics
        if i % 5 == 0:
            # Jump to a random state: joint positions in range, brisk velocities.
            with physics.reset_context():
                for j, name in enumerate(task.joint_names):
                    jid = task.model.joint(name).id
                    lo, hi = task.model.jnt_range[jid] if task.model.jnt_limited[jid] else (-np.pi, np.pi)
                    physics.data.qpos[task.qpos_index[j]] = rng.uniform(lo, hi)
                physics.data.qvel[:] = rng.normal(0, 2.0, physics.model.nv)
        action = rng.uniform(-1, 1, task.action_size)
        yield env.step(action), action


@pytest.mark.parametrize("name", TASK_NAMES)
def test_observation_and_reward_equal_dm_control(tasks, name):
    task = tasks[name]
    env = task.make_environment(seed=3)
    rng = np.random.default_rng(0)
    for timestep, action in random_states(task, env, rng, 150):
        data = env.physics.data
        positions, velocities = task.joint_state_from_physics(data.qpos.copy(), data.qvel.copy())
        obs = task.observation(positions, velocities)
        expected = flatten_observation(timestep.observation)["observations"]
        assert obs.shape == (task.observation_size,)
        np.testing.assert_allclose(obs, expected, rtol=0, atol=1e-12)
        assert task.reward(obs, action) == pytest.approx(timestep.reward, abs=1e-12)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_batched_observation_and_reward_match_single(tasks, name):
    task = tasks[name]
    rng = np.random.default_rng(1)
    positions = rng.uniform(-1, 1, (3, 4, len(task.joint_names)))  # (K, N, J)
    velocities = rng.normal(0, 1, (3, 4, len(task.joint_names)))
    actions = rng.uniform(-1, 1, (3, 4, task.action_size))
    obs = task.observation(positions, velocities)
    rewards = task.reward(obs, actions)
    assert obs.shape == (3, 4, task.observation_size) and rewards.shape == (3, 4)
    for k in range(3):
        for n in range(4):
            np.testing.assert_allclose(obs[k, n], task.observation(positions[k, n], velocities[k, n]), atol=1e-15)
            assert rewards[k, n] == pytest.approx(float(task.reward(obs[k, n], actions[k, n])), abs=1e-15)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_state_from_observation_reproduces_the_observation(tasks, name):
    task = tasks[name]
    env = task.make_environment(seed=5)
    rng = np.random.default_rng(2)
    for timestep, _ in random_states(task, env, rng, 60):
        obs = flatten_observation(timestep.observation)["observations"]
        positions, velocities = task.state_from_observation(obs)
        np.testing.assert_allclose(task.observation(positions, velocities), obs, atol=1e-12)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_timing_and_actuators_match_dm_control(tasks, name):
    task = tasks[name]
    env = task.make_environment(seed=0)
    assert task.control_timestep == pytest.approx(env.control_timestep())
    assert task.episode_steps == round(env._step_limit)
    spec = env.action_spec()
    assert spec.shape == (task.action_size,)
    np.testing.assert_array_equal(spec.minimum, task.control_range[:, 0])
    np.testing.assert_array_equal(spec.maximum, task.control_range[:, 1])


def test_torque_round_trip_clamps_to_actuator_limits(tasks):
    task = tasks["walker_stand"]
    action = np.array([0.5, -1.0, 1.0, 0.0, 0.25, -0.75])
    torque = task.action_to_torque(action)
    np.testing.assert_allclose(torque, action * np.array([100, 50, 20, 100, 50, 20]))
    np.testing.assert_allclose(task.torque_to_control(torque), action)
    np.testing.assert_allclose(task.torque_to_control(torque * 10), np.clip(action * 10, -1, 1))


def test_unknown_task_lists_valid_names():
    with pytest.raises(ConfigError, match="cartpole_swingup"):
        make_task("cartpole_swingdown")
