"""The ground-truth model predicts exactly what stepping the dm_control environment gives."""

import numpy as np
import pytest

from tdm_control.dynamics.mujoco_model import MujocoDynamics
from tdm_control.history import History
from tdm_control.tasks import TASKS


@pytest.mark.parametrize("name", sorted(TASKS))
def test_rollout_equals_stepping_the_environment(tasks, name):
    task = tasks[name]
    dynamics = MujocoDynamics(task, nthread=2)
    env = task.make_environment(seed=11)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(30):  # leave the initial pose
        env.step(rng.uniform(-1, 1, task.action_size))
    data = env.physics.data
    obs0 = task.observation(*task.joint_state_from_physics(data.qpos.copy(), data.qvel.copy()))
    actions = rng.uniform(-1, 1, (3, 20, task.action_size))  # (K, N, m)
    pred_obs, pred_reward = dynamics.rollout(History(0), obs0, actions)
    assert pred_obs.shape == (3, 20, task.observation_size) and pred_reward.shape == (3, 20)

    state = env.physics.get_state()
    for k in range(3):
        with env.physics.reset_context():  # recomputes derived quantities for the restored state
            env.physics.set_state(state)
        for n in range(20):
            timestep = env.step(actions[k, n])
            data = env.physics.data
            expected = task.observation(*task.joint_state_from_physics(data.qpos.copy(), data.qvel.copy()))
            # Not bit-identical: the model starts from the observation (unobserved x = 0, solver
            # warm start reset), so contacts differ in the last bits.
            np.testing.assert_allclose(pred_obs[k, n], expected, rtol=0, atol=1e-9)
            assert pred_reward[k, n] == pytest.approx(timestep.reward, abs=1e-9)
    dynamics.close()


def test_threaded_rollout_equals_single_threaded(tasks):
    task = tasks["cartpole_swingup"]
    obs = np.array([0.1, -1.0, 0.0, 0.3, -0.2])
    actions = np.random.default_rng(1).uniform(-1, 1, (16, 25, 1))
    one, two = MujocoDynamics(task, nthread=1), MujocoDynamics(task, nthread=2)
    a, b = one.rollout(History(0), obs, actions), two.rollout(History(0), obs, actions)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    two.close()


def test_wrong_action_size_is_rejected(tasks):
    dynamics = MujocoDynamics(tasks["cartpole_swingup"], nthread=1)
    with pytest.raises(ValueError, match=r"must be \(K, N, 1\), got \(2, 3, 6\)"):
        dynamics.rollout(History(0), np.zeros(5), np.zeros((2, 3, 6)))


def test_action_repeat_holds_each_action_for_several_control_steps(tasks):
    task = tasks["walker_stand"]
    dynamics = MujocoDynamics(task, nthread=1, action_repeat=3)
    env = task.make_environment(seed=2)
    env.reset()
    data = env.physics.data
    obs0 = task.observation(*task.joint_state_from_physics(data.qpos.copy(), data.qvel.copy()))
    actions = np.random.default_rng(4).uniform(-1, 1, (1, 4, 6))
    pred_obs, pred_reward = dynamics.rollout(History(0), obs0, actions)
    for n in range(4):
        for _ in range(3):
            timestep = env.step(actions[0, n])
        data = env.physics.data
        expected = task.observation(*task.joint_state_from_physics(data.qpos.copy(), data.qvel.copy()))
        np.testing.assert_allclose(pred_obs[0, n], expected, atol=1e-9)
        assert pred_reward[0, n] == pytest.approx(timestep.reward, abs=1e-9)  # reward on arrival
