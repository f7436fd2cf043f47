"""Task families: the new dm_control tasks equal dm_control, and randomized variants simulate what they record."""

import json
import pickle

import mujoco
import numpy as np
import pytest
from dm_control import suite
from dm_control.rl.control import flatten_observation

from tdm_control.config import ConfigError
from tdm_control.tasks import TASKS, make_task, variants
from tdm_control.tasks.simulator import Simulator

NEW_TASKS = ("pendulum_swingup", "acrobot_swingup", "point_mass_easy", "reacher_easy", "cartpole_two_poles",
             "cartpole_three_poles")


def dm_control_joint_state(task, physics):
    """Positions and velocities (J,) of a state of dm_control's own environment. Its reacher keeps the
    target in the model (a geom of the world, moved each episode): that is what the target joints hold."""
    positions, velocities = physics.data.qpos.copy(), physics.data.qvel.copy()
    if task.name == "reacher_easy":  # the target body sits at the plane's origin
        positions = np.concatenate([positions, physics.named.model.geom_pos["target", :2]])
        velocities = np.concatenate([velocities, np.zeros(2)])
    return positions, velocities


def jump(task, physics, rng, near_goal):
    """Puts dm_control's physics in a random state: joints anywhere in range with brisk velocities, or
    (near_goal) close to the goal (poles up, mass at the centre, reacher's target by its finger)."""
    model = physics.model
    with physics.reset_context():
        for j in range(model.njnt):
            low, high = model.jnt_range[j] if model.jnt_limited[j] else (-np.pi, np.pi)
            physics.data.qpos[model.jnt_qposadr[j]] = rng.uniform(low, high) * (0.05 if near_goal else 1.0)
        physics.data.qvel[:] = rng.normal(0, 0.1 if near_goal else 2.0, model.nv)
    if near_goal and task.name == "reacher_easy":
        physics.named.model.geom_pos["target", :2] = physics.named.data.geom_xpos["finger", :2] + rng.uniform(
            -0.05, 0.05, 2)
        physics.forward()


@pytest.mark.parametrize("name", NEW_TASKS)
def test_observation_and_reward_equal_dm_control(tasks, name):
    task = tasks[name]
    env = suite.load(task.domain, task.suite_task, task_kwargs={"random": 3})  # dm_control's own
    assert task.control_timestep == pytest.approx(env.control_timestep())
    assert task.episode_steps == round(env._step_limit)
    rng = np.random.default_rng(0)
    env.reset()
    rewards = []
    for i in range(80):
        if i % 5 == 0:
            jump(task, env.physics, rng, near_goal=i % 10 == 0)
        action = rng.uniform(-1, 1, task.action_size)
        timestep = env.step(action)
        obs = task.observation(*dm_control_joint_state(task, env.physics))
        np.testing.assert_allclose(obs, flatten_observation(timestep.observation)["observations"], rtol=0, atol=1e-12)
        assert task.reward(obs, action) == pytest.approx(timestep.reward, abs=1e-12)
        rewards.append(timestep.reward)
    assert max(rewards) > 0.5 and min(rewards) < 0.5  # both sides of the reward were compared


@pytest.mark.parametrize("name", NEW_TASKS)
def test_environment_is_dm_controls(tasks, name):
    """Same seed, same actions: the task's environment (for reacher, its target on joints) steps as dm_control's."""
    task = tasks[name]
    ours = task.make_environment(seed=7)
    theirs = suite.load(task.domain, task.suite_task, task_kwargs={"random": 7})
    assert ours._step_limit == theirs._step_limit and ours.control_timestep() == theirs.control_timestep()
    rng = np.random.default_rng(1)
    pairs = [(ours.reset(), theirs.reset())]
    for _ in range(40):
        action = rng.uniform(-1, 1, task.action_size)
        pairs.append((ours.step(action), theirs.step(action)))
    for a, b in pairs:
        np.testing.assert_allclose(flatten_observation(a.observation)["observations"],
                                   flatten_observation(b.observation)["observations"], rtol=0, atol=1e-12)
        assert a.reward == b.reward or a.reward == pytest.approx(b.reward, abs=1e-12)


def test_sizes_of_the_new_tasks(tasks):
    sizes = {name: (tasks[name].observation_size, tasks[name].action_size) for name in NEW_TASKS}
    assert sizes == {"pendulum_swingup": (3, 1), "acrobot_swingup": (6, 1), "point_mass_easy": (4, 2),
                     "reacher_easy": (6, 2), "cartpole_two_poles": (8, 1), "cartpole_three_poles": (11, 1)}
    assert tasks["point_mass_easy"].actuated_joint_names == ("root_x", "root_y")  # through its fixed tendons
    assert tasks["reacher_easy"].actuated_joint_names == ("shoulder", "wrist")


# ------------------------------------------------------------------ variants
def test_variant_is_deterministic_and_seeds_differ():
    build = variants.variant_class.__wrapped__  # uncached: built afresh each call
    for base in ("cartpole_two_poles", "reacher_easy"):
        a, b, other = build(base, 17), build(base, 17), build(base, 18)
        assert a.variant_factors == b.variant_factors and a.model_xml()[0] == b.model_xml()[0]
        assert a.variant_factors != other.variant_factors and a.model_xml()[0] != other.model_xml()[0]
    task = make_task("cartpole_two_poles~v17")
    assert task.describe() == make_task("cartpole_two_poles~v17").describe()
    assert pickle.loads(pickle.dumps(task)).describe() == task.describe()  # a worker process can receive one


@pytest.mark.parametrize("name", sorted(TASKS))
def test_variant_records_its_parameters_within_the_ranges(tasks, name):
    base, task = tasks[name], make_task(f"{name}~v17")
    described = json.loads(json.dumps(task.describe()))  # JSON-serialisable
    assert described["task"] == f"{name}~v17"
    variant = described["variant"]
    assert (variant["base_task"], variant["seed"]) == (name, 17)
    assert variant["ranges"] == {k: list(v) for k, v in variants.RANGES.items()}
    factors, values = variant["factors"], variant["values"]
    for quantity, (low, high) in variants.RANGES.items():
        assert all(low <= f <= high for f in factors[quantity].values()), quantity
    model, nominal = task.model, base.model
    assert set(factors["mass"]) == {nominal.body(i).name for i in range(1, nominal.nbody)}
    links = dict(variants.LINKS.get(name, ()))
    for body, f in factors["mass"].items():
        if body not in links:  # a link of set density also changes mass with its length
            assert values["mass"][body] == pytest.approx(nominal.body(body).mass[0] * f, rel=1e-5)
    for joint, f in factors["damping"].items():
        assert values["damping"][joint] == pytest.approx(nominal.joint(joint).damping[0] * f, rel=1e-5)
    for actuator, f in factors["gear"].items():
        assert values["gear"][actuator] == pytest.approx(nominal.actuator(actuator).gear[0] * f, rel=1e-5)
    np.testing.assert_allclose(task.gear, [values["gear"][a] for a in task.actuator_names])
    assert set(factors["length"]) == set(links)
    for body, f in factors["length"].items():
        assert values["length"][body] == pytest.approx(variants.variant_class(name, 0).link_lengths[body] * f)
    assert np.all(model.dof_damping == np.array([values["damping"][model.joint(j).name]
                                                 for j in model.dof_jntid]))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_variant_observation_and_reward_equal_its_environment(name):
    task = make_task(f"{name}~v17")
    env = task.make_environment(seed=2)
    env.reset()
    np.testing.assert_allclose(env.physics.model.body_mass, task.model.body_mass)
    rng = np.random.default_rng(3)
    for _ in range(30):
        action = rng.uniform(-1, 1, task.action_size)
        timestep = env.step(action)
        data = env.physics.data
        obs = task.observation(*task.joint_state_from_physics(data.qpos.copy(), data.qvel.copy()))
        np.testing.assert_allclose(obs, flatten_observation(timestep.observation)["observations"], rtol=0, atol=1e-12)
        assert task.reward(obs, action) == pytest.approx(timestep.reward, abs=1e-12)


def run(simulator, torques):
    """A new episode under torques (N, m): its initial (qpos, qvel) and the joint positions (N, J) after each step."""
    simulator.reset()
    start = (simulator.physics.data.qpos.copy(), simulator.physics.data.qvel.copy())
    out = []
    for torque in torques:
        simulator.step(torque)
        out.append(simulator.joint_state()[0])
    return start, np.array(out)


def test_a_variant_simulator_simulates_the_heavier_pole(tasks):
    base, heavy = tasks["cartpole_swingup"], make_task("cartpole_swingup~v4")
    assert heavy.variant_factors["mass"]["pole_1"] > 1.3  # variant 4: a pole 40% heavier (and other changes)
    torques = np.random.default_rng(4).uniform(-1, 1, (60, 1)) * base.gear
    simulator = Simulator(heavy, seed=5)
    (qpos, qvel), positions = run(simulator, torques)
    pole = heavy.model.body("pole_1").id
    assert simulator.physics.model.body_mass[pole] == pytest.approx(
        base.model.body_mass[pole] * heavy.variant_factors["mass"]["pole_1"])
    (base_qpos, _), base_positions = run(Simulator(base, seed=5), torques)
    np.testing.assert_array_equal(qpos, base_qpos)  # same start, same forces, other physics
    assert np.abs(positions - base_positions).max() > 1e-2
    # The modified model, stepped by MuJoCo itself from the same start, is what the simulator ran.
    data = mujoco.MjData(heavy.model)
    data.qpos[:], data.qvel[:] = qpos, qvel
    for t, torque in enumerate(torques):
        data.ctrl[:] = heavy.torque_to_control(torque)
        for _ in range(heavy.n_sub_steps):
            mujoco.mj_step(heavy.model, data)
        np.testing.assert_allclose(data.qpos, positions[t], rtol=0, atol=1e-9)


def test_variant_zero_is_the_base_task(tasks):
    base, zero = tasks["cartpole_swingup"], make_task("cartpole_swingup~v0")
    assert zero.model_xml()[0] == base.model_xml()[0]
    assert all(f == 1.0 for quantity in zero.variant_factors.values() for f in quantity.values())
    torques = np.random.default_rng(6).uniform(-10, 10, (40, 1))
    np.testing.assert_array_equal(run(Simulator(zero, seed=8), torques)[1], run(Simulator(base, seed=8), torques)[1])


def test_make_task_reads_variant_names():
    assert make_task("pendulum_swingup~v3").name == "pendulum_swingup~v3"
    for bad in ("pendulum_swingup~v03", "pendulum_swingup~v-1", "pendulum_swingup~vx", "pendulum~v3",
                "pendulum_swingup~v"):
        with pytest.raises(ConfigError, match="variant"):
            make_task(bad)


def test_family_splits_are_disjoint_and_name_valid_variants():
    assert set(variants.FAMILY_SPLITS) == set(TASKS)
    for name, (train, heldout) in variants.FAMILY_SPLITS.items():
        assert train and heldout and not set(train) & set(heldout)
        assert 0 in train  # the unmodified task is one of the training variants
        assert variants.family(name, "heldout") == [f"{name}~v{s}" for s in heldout]
        assert all(variants.parse_variant_name(v) == (name, s) for v, s in zip(variants.family(name, "train"), train))
    assert make_task(variants.family("acrobot_swingup", "heldout")[0]).variant["seed"] == variants.HELDOUT_SEEDS[0]
    with pytest.raises(ValueError, match="split"):
        variants.family("acrobot_swingup", "test")
