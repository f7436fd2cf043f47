"""`tdm-train import-bag` on bags written here message by message: mapping, resampling, splitting, refusals.

The bags are real rosbag2 folders (tdm_control.ros.bag.BagWriter, the writer `--record` uses) of
episodes simulated in-process; the reference is the collector's own episode loop
(`training.collect.play_episode`) with the same simulator seed and actions. The round trip through
running nodes is in test_bag_record.py.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tdm_control.ros import messages as m
from tdm_control.ros.bag import BagWriter
from tdm_control.ros.transport import CLOCK, COMMANDS, LATCHED, SENSOR_DATA
from tdm_control.tasks.simulator import Simulator
from training.bag_import import ImportBagError, ImportConfig, import_bags
from training.collect import play_episode
from training.dataset import load_dataset

TASK = "cartpole_swingup"
STEP_NS = 10_000_000  # cartpole's control timestep, 0.01 s


def brownian_actions(seed: int, steps: int) -> np.ndarray:
    """(steps, 1) actions in [-1, 1] that cover the box (a random walk, clipped)."""
    rng = np.random.default_rng(seed)
    return np.clip(np.cumsum(rng.normal(scale=0.3, size=(steps, 1)), axis=0), -1, 1)


def simulate(task, seed: int, actions: np.ndarray, hold: int = 1) -> list[dict]:
    """The states (stamp, positions, velocities), the torque sent after each and the reward that followed."""
    simulator = Simulator(task, seed=seed)
    simulator.reset()
    steps = []
    for t in range(len(actions) * hold):
        q, v, effort = simulator.joint_state()
        torque = task.action_to_torque(actions[t // hold])
        steps.append({"stamp": t * STEP_NS, "q": q, "v": v, "effort": effort, "torque": torque})
        steps[-1]["reward"] = simulator.step(torque)
    return steps


def reference(task, seed: int, actions: np.ndarray):
    """The episode the collector records for these actions, but the last: the bag's last state has no
    state after it, so S recorded states give S - 1 steps."""
    return play_episode(task, Simulator(task, seed=seed), lambda t, o, r: (actions[t], 1), len(actions) - 1, 1, seed)


def joint_state(task, step, order=None, drop=()):
    names = list(task.joint_names) + ["an_extra_joint"]
    q, v, e = list(step["q"]) + [9.0], list(step["v"]) + [9.0], list(step["effort"]) + [0.0]
    index = order or list(range(len(names)))
    keep = [i for i in index if names[i] not in drop]
    return m.JointState(header=m.Header(stamp=m.Time.from_ns(step["stamp"])), name=[names[i] for i in keep],
                        position=[q[i] for i in keep], velocity=[v[i] for i in keep], effort=[e[i] for i in keep])


def write_bag(path, episodes, storage="mcap", topics=("episode", "clock", "reward"), order=None, drop=(),
              command=None, stamp=None, extra_states=False):
    """A bag of `episodes` (lists of simulate() steps) in the order the bridge sends: episode, clock, state,
    command, reward, clock. Options break it on purpose."""
    bag = BagWriter(str(path), storage)
    bag.add_topic("/joint_states", m.JointState, SENSOR_DATA)
    bag.add_topic("/effort_controller/commands", m.Float64MultiArray, COMMANDS)
    bag.add_topic("/reward", m.Float64, COMMANDS)
    bag.add_topic("/clock", m.Clock, CLOCK)
    bag.add_topic("/sim_bridge/episode", m.Int32, LATCHED)
    for e, steps in enumerate(episodes):
        if "episode" in topics:
            bag.write("/sim_bridge/episode", m.Int32(data=e))
        if "clock" in topics:
            bag.write("/clock", m.Clock(clock=m.Time.from_ns(0)))
        for t, step in enumerate(steps):
            step = dict(step, stamp=stamp(e, t) if stamp else step["stamp"])
            bag.write("/joint_states", joint_state(bag_task(), step, order, drop))
            bag.write("/effort_controller/commands", m.vector(command(t, step) if command else step["torque"]))
            if "reward" in topics:
                bag.write("/reward", m.Float64(data=step["reward"]))
            if "clock" in topics:
                bag.write("/clock", m.Clock(clock=m.Time.from_ns(step["stamp"] + STEP_NS)))
            if extra_states and t + 1 < len(steps):  # a state half-way, linearly between its neighbours
                after = steps[t + 1]
                half = {"stamp": step["stamp"] + STEP_NS // 2, "q": (step["q"] + after["q"]) / 2,
                        "v": (step["v"] + after["v"]) / 2, "effort": step["effort"]}
                bag.write("/joint_states", joint_state(bag_task(), half, order, drop))
    bag.close()
    return str(path)


_TASK = {}


def bag_task():
    return _TASK["task"]


@pytest.fixture(autouse=True)
def _remember_task(tasks):
    _TASK["task"] = tasks[TASK]


@pytest.fixture
def two_episodes(tasks):
    task = tasks[TASK]
    actions = [brownian_actions(seed, 30) for seed in (11, 12)]
    return task, actions, [simulate(task, seed, a) for seed, a in zip((5, 6), actions)]


def assert_same_episode(imported, expected):
    assert imported.observations.shape == expected.observations.shape
    np.testing.assert_array_equal(imported.observations, expected.observations)
    np.testing.assert_allclose(imported.actions, expected.actions, rtol=0, atol=1e-15)  # (a * gear) / gear
    np.testing.assert_array_equal(imported.rewards, expected.rewards)
    assert imported.episode_return == pytest.approx(expected.episode_return, rel=1e-12)
    assert set(imported.policy.tolist()) == {3}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_import_equals_the_collectors_episodes_and_records_its_source(tmp_path, two_episodes, storage):
    task, actions, episodes = two_episodes
    bag = write_bag(tmp_path / "bag", episodes, storage)
    section = import_bags([bag], str(tmp_path / "data"), ImportConfig(task=TASK))
    meta, imported = load_dataset(str(tmp_path / "data"))
    assert len(imported) == 2
    for got, seed, a in zip(imported, (5, 6), actions):
        assert_same_episode(got, reference(task, seed, a))
    assert meta["task"] == task.describe() and meta["collect"]["action_repeat"] == 1
    (source,) = meta["import"]["bags"]
    assert source["path"] == os.path.abspath(bag) and len(source["sha256"]) == 64 and source["episodes"] == 2
    assert [e["boundary"] for e in section["episodes"]] == ["episode 0 announced", "episode 1 announced"]
    assert {e["rewards_from"] for e in section["episodes"]} == {"recorded"}


def test_joint_order_extra_joints_and_extra_states_do_not_matter(tmp_path, two_episodes):
    task, actions, episodes = two_episodes
    plain = write_bag(tmp_path / "plain", episodes)
    shuffled = write_bag(tmp_path / "shuffled", episodes, order=[2, 0, 1], extra_states=True)
    import_bags([plain], str(tmp_path / "a"), ImportConfig(task=TASK))
    import_bags([shuffled], str(tmp_path / "b"), ImportConfig(task=TASK))
    _, a = load_dataset(str(tmp_path / "a"))
    _, b = load_dataset(str(tmp_path / "b"))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.observations, y.observations)
        np.testing.assert_array_equal(x.actions, y.actions)


def test_states_between_grid_points_are_interpolated(tmp_path, tasks):
    """Joint states every 4 ms, control every 10 ms: the state at a grid point is interpolated linearly
    between the states around it; the action is the command answering the newest state before the
    grid point plus half a step."""
    task = tasks[TASK]
    stamps = np.arange(40) * 4_000_000  # (S,) ns
    time_s = stamps * 1e-9
    q = np.stack([0.2 * np.sin(5 * time_s), 0.5 * time_s], axis=1)  # (S, J) slider (m), hinge (rad)
    v = np.stack([np.cos(5 * time_s), 0.5 + 0 * time_s], axis=1)
    torques = np.linspace(-5, 5, len(stamps))[:, None]  # (S, 1) N, one command after each state
    steps = [{"stamp": int(s), "q": q[i], "v": v[i], "effort": np.zeros(2), "torque": torques[i], "reward": 0.5}
             for i, s in enumerate(stamps)]
    bag = write_bag(tmp_path / "fast", [steps], topics=("reward",))
    import_bags([bag], str(tmp_path / "data"), ImportConfig(task=TASK, min_steps=5))
    _, (episode,) = load_dataset(str(tmp_path / "data"))
    grid = np.arange(16) * STEP_NS  # the last state is at 156 ms: grid points 0 .. 150 ms
    expected_q = np.stack([np.interp(grid, stamps, q[:, j]) for j in range(2)], axis=1)
    expected_v = np.stack([np.interp(grid, stamps, v[:, j]) for j in range(2)], axis=1)
    np.testing.assert_allclose(episode.observations, task.observation(expected_q, expected_v), rtol=0, atol=1e-12)
    answered = np.searchsorted(stamps, grid[:-1] + STEP_NS // 2) - 1  # newest state before g + 5 ms
    np.testing.assert_allclose(episode.actions, task.torque_to_control(torques[answered]), rtol=0, atol=1e-15)
    assert np.all(episode.rewards[1:] == 0.5) and len(episode) == 15


def test_without_reward_topic_the_task_reward_is_used(tmp_path, two_episodes):
    task, actions, episodes = two_episodes
    bag = write_bag(tmp_path / "bag", episodes, topics=("episode",))
    section = import_bags([bag], str(tmp_path / "data"), ImportConfig(task=TASK))
    _, imported = load_dataset(str(tmp_path / "data"))
    assert {e["rewards_from"] for e in section["episodes"]} == {"task"}
    for got, seed, a in zip(imported, (5, 6), actions):
        np.testing.assert_allclose(got.rewards, reference(task, seed, a).rewards, rtol=0, atol=1e-9)


def test_episodes_split_at_clock_resets_and_gaps(tmp_path, two_episodes):
    task, _, episodes = two_episodes
    clock_only = write_bag(tmp_path / "clock", episodes, topics=("clock",))
    section = import_bags([clock_only], str(tmp_path / "a"), ImportConfig(task=TASK))
    assert [e["steps"] for e in section["episodes"]] == [29, 29]
    assert section["episodes"][1]["boundary"].startswith("clock reset")
    gap = write_bag(tmp_path / "gap", episodes[:1], topics=(),
                    stamp=lambda e, t: t * STEP_NS + (STEP_NS * 50 if t >= 15 else 0))
    section = import_bags([gap], str(tmp_path / "b"), ImportConfig(task=TASK))
    assert [e["steps"] for e in section["episodes"]] == [14, 14]
    assert section["episodes"][1]["boundary"].startswith("gap of 0.510 s")


def test_action_repeat_takes_held_actions_and_refuses_changing_ones(tmp_path, tasks):
    task = tasks[TASK]
    actions = brownian_actions(3, 16)
    steps = simulate(task, 9, actions, hold=2)  # each action held 2 control steps
    bag = write_bag(tmp_path / "held", [steps])
    import_bags([bag], str(tmp_path / "data"), ImportConfig(task=TASK, action_repeat=2, min_steps=5))
    meta, (episode,) = load_dataset(str(tmp_path / "data"))
    expected = play_episode(task, Simulator(task, seed=9), lambda t, o, r: (actions[t], 1), 15, 2, 9)
    assert meta["collect"]["action_repeat"] == 2
    assert_same_episode(episode, expected)
    with pytest.raises(ImportBagError, match=r"change within the dataset step of 2 control steps from the state "
                                             r"stamped 0\.000000 s.*--action-repeat 1"):
        import_bags([write_bag(tmp_path / "changing", [simulate(task, 9, actions)])], str(tmp_path / "x"),
                    ImportConfig(task=TASK, action_repeat=2, min_steps=5))


def test_bad_bags_are_refused_naming_topic_and_stamp(tmp_path, two_episodes):
    task, _, episodes = two_episodes
    config = ImportConfig(task=TASK)

    def refused(bag, pattern, **kw):
        with pytest.raises(ImportBagError, match=pattern):
            import_bags([bag], str(tmp_path / f"out-{os.path.basename(bag)}"), ImportConfig(task=TASK, **kw))

    no_commands = BagWriter(str(tmp_path / "no_commands"))
    no_commands.add_topic("/joint_states", m.JointState, SENSOR_DATA)
    no_commands.write("/joint_states", joint_state(task, episodes[0][0]))
    no_commands.close()
    refused(no_commands.path, r"no topic /effort_controller/commands \(std_msgs/msg/Float64MultiArray\) in the bag; "
                              r"it has: /joint_states")
    refused(write_bag(tmp_path / "no_hinge", episodes, drop=("hinge_1",)),
            r"joint\(s\) \['hinge_1'\] that cartpole_swingup needs never appear on /joint_states \(first state "
            r"without them stamped 0\.000000 s")
    refused(write_bag(tmp_path / "long_commands", episodes, command=lambda t, s: [0.0, 0.0] if t == 7 else s["torque"]),
            r"/effort_controller/commands after the state stamped 0\.070000 s: command has 2 values; expected 1")
    refused(write_bag(tmp_path / "backwards", episodes[:1], topics=(),
                      stamp=lambda e, t: t * STEP_NS - (STEP_NS * 3 if t >= 20 else 0)),
            r"stamps go backwards on /joint_states: 0\.170000 s after 0\.190000 s")
    short = [episodes[0][:6], episodes[1][:8]]
    refused(write_bag(tmp_path / "short", short), r"too short: its longest episode gives 7 dataset step\(s\) of "
                                                    r"0\.01 s \(2 episode\(s\) found\); at least 10 are needed")
    one_short = import_bags([write_bag(tmp_path / "one_short", [episodes[0], episodes[1][:6]])],
                            str(tmp_path / "out-one_short"), config)
    assert len(one_short["episodes"]) == 1 and one_short["skipped"]["episodes_shorter_than_min_steps"] == 1
    wrong_type = BagWriter(str(tmp_path / "wrong_type"))
    wrong_type.add_topic("/joint_states", m.Float64, SENSOR_DATA)
    wrong_type.add_topic("/effort_controller/commands", m.Float64MultiArray, COMMANDS)
    wrong_type.close()
    refused(wrong_type.path, r"topic /joint_states holds std_msgs/msg/Float64, not sensor_msgs/msg/JointState")
    empty = BagWriter(str(tmp_path / "empty"))
    empty.add_topic("/joint_states", m.JointState, SENSOR_DATA)
    empty.add_topic("/effort_controller/commands", m.Float64MultiArray, COMMANDS)
    empty.close()
    refused(empty.path, r"topic /joint_states has no messages")
    refused(str(tmp_path), r"is not a rosbag2 folder")
    good = write_bag(tmp_path / "good", episodes)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    with pytest.raises(ImportBagError, match="exists and is not an empty folder"):
        import_bags([good], str(tmp_path / "full"), config)


def test_cli_imports_and_reports_a_bad_bag_in_one_line(tmp_path, two_episodes, capsys):
    from training.cli import main

    _, _, episodes = two_episodes
    bag = write_bag(tmp_path / "bag", episodes)
    assert main(["import-bag", "--task", TASK, "--out", str(tmp_path / "data"), "--joints", "slider", bag]) == 0
    out = capsys.readouterr().out
    assert "imported 2 episode(s), 58 dataset steps, from 1 bag(s)" in out
    assert "episode 1: bag 0, 29 steps from 0.000 s (episode 1 announced; rewards recorded)" in out
    meta = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert meta["import"]["joints"] == ["slider"]
    assert main(["import-bag", "--task", TASK, "--out", str(tmp_path / "x"), str(tmp_path / "nothing")]) == 2
    assert "tdm-train: error:" in capsys.readouterr().err
    assert main(["import-bag", "--task", TASK, "--out", str(tmp_path / "y"), "--joints", "hinge_1", bag]) == 2
    assert "joints: ['hinge_1'] must list each actuated joint" in capsys.readouterr().err


def test_stats_group_imported_episodes_as_logged(tmp_path, two_episodes):
    from training.dataset import summarize_dataset

    _, _, episodes = two_episodes
    import_bags([write_bag(tmp_path / "bag", episodes)], str(tmp_path / "data"), ImportConfig(task=TASK))
    stats = summarize_dataset(str(tmp_path / "data"))
    assert [(g["policy"], g["count"]) for g in stats["by_policy"]] == [("logged", 2)]
    assert stats["dataset_steps"] == 58 and stats["action_repeat"] == 1


@pytest.mark.parametrize("damage", ["metadata", "truncated", "overwritten", "zeroed"])
def test_a_damaged_bag_is_refused_in_one_line_and_writes_nothing(tmp_path, two_episodes, capsys, damage):
    """A storage file cut short (a recorder killed mid-write), bytes overwritten on disk or a garbage
    metadata.yaml: `import-bag` says which bag and where it broke, never a traceback, and writes nothing."""
    from training.cli import main

    _, _, episodes = two_episodes
    bag = write_bag(tmp_path / "bag", episodes)
    storage = next(p for p in Path(bag).iterdir() if p.name != "metadata.yaml")
    data = storage.read_bytes()
    if damage == "metadata":
        (Path(bag) / "metadata.yaml").write_text("rosbag2_bagfile_information: [not, a, mapping\n")
    elif damage == "truncated":
        storage.write_bytes(data[: len(data) // 2])
    elif damage == "overwritten":  # a message's bytes
        middle = len(data) // 2
        storage.write_bytes(data[:middle] + bytes(range(256)) * 4 + data[middle + 1024:])
    else:  # a record's header: the reader fails between messages
        storage.write_bytes(data[:len(data) // 3] + b"\xff" * 4096 + data[len(data) // 3 + 4096:])
    out = tmp_path / "data"
    assert main(["import-bag", "--task", TASK, "--out", str(out), bag]) == 2
    err = capsys.readouterr().err
    expected = {"metadata": "cannot be read as a rosbag2", "truncated": "cannot be read as a rosbag2",
                "overwritten": "at log time", "zeroed": "the bag is damaged"}[damage]
    assert err.startswith(f"tdm-train: error: {bag}") and err.count("\n") == 1 and "Traceback" not in err
    assert expected in err and "mcap recover" in err
    assert not out.exists() or not any(out.iterdir())
