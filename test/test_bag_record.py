"""`tdm-control launch --record`: real nodes over DDS write a rosbag2 that independent readers open,
and that `tdm-train import-bag` turns into the dataset the collector writes in-process.

One lockstep run of the bridge and the ground-truth planner (3 episodes of 40 steps) is recorded
once for the module; the tests read it with rosbags' own rosbag2 reader and with the `mcap` package
(which decodes with the message definitions stored in the file, as Foxglove does), check that the
returns are those of the unrecorded loop (the in-process evaluation, which test_launch_closed_loop
shows equal to it), import it, compare with the collector's episode loop given the same simulator
seeds and the actions the in-process planner chooses, and train a tiny TDM on the imported folder
through an ordinary pipeline config. A realtime run (async planner) is recorded and imported too: its
imported actions are checked against the forces the bridge applied (each joint state's `effort`).
"""

import json
import pathlib
import sqlite3

import numpy as np
import pytest
import yaml
from ros_helpers import CARTPOLE_CONFIG, NodeProcess, _claim_domain
from test_launch_closed_loop import config_planner_params, small_planner_args

from tdm_control.controller import build_controller
from tdm_control.evaluation.episodes import EvalConfig, evaluate
from tdm_control.tasks.simulator import Simulator
from training.bag_import import ImportConfig, import_bags
from training.collect import play_episode
from training.dataset import load_dataset

SEED, EPISODES, STEPS = 3, 3, 40
TOPICS = {
    "/joint_states": "sensor_msgs/msg/JointState",
    "/effort_controller/commands": "std_msgs/msg/Float64MultiArray",
    "/clock": "rosgraph_msgs/msg/Clock",
    "/reward": "std_msgs/msg/Float64",
    "/sim_bridge/episode": "std_msgs/msg/Int32",
    "/sim_bridge/reset": "std_msgs/msg/Empty",
    "/planner_node/planning_info": "std_msgs/msg/Float64MultiArray",
    "/planner_node/planned_trajectory": "trajectory_msgs/msg/JointTrajectory",
    "/planner_node/execution_info": "std_msgs/msg/Float64MultiArray",
}
"""Every topic of the lockstep loop (the async planner's are recorded empty here)."""


def launch_recorded(folder, *args: str) -> dict:
    """Runs `tdm-control launch --record folder/bag` on a domain of its own; returns the bridge's result."""
    domain, lock = _claim_domain()
    try:
        result = folder / "result.json"
        launcher = NodeProcess(["-m", "tdm_control.cli", "launch", CARTPOLE_CONFIG, "--seed", str(SEED),
                                "--result", str(result), "--record", str(folder / "bag"), *small_planner_args(),
                                *args], env={"ROS_DOMAIN_ID": str(domain)})
        assert launcher.wait() == 0, launcher.output
    finally:
        lock.close()
    return {"bag": str(folder / "bag"), "result": json.loads(result.read_text()), "output": launcher.output}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return launch_recorded(tmp_path_factory.mktemp("recorded"), "--steps", str(STEPS), "--episodes", str(EPISODES))


@pytest.fixture(scope="module")
def in_process():
    return evaluate(EvalConfig(task="cartpole_swingup", model="mujoco", planner="warm_start",
                               planner_params=config_planner_params(), episodes=EPISODES, steps=STEPS, seed=SEED),
                    show_progress=False)


def test_recording_leaves_the_lockstep_returns_unchanged(recorded, in_process):
    result = recorded["result"]
    assert result["returns"] == in_process["returns"]
    assert result["episode_rewards"] == in_process["episode_rewards"]
    counts = result["recording"]["messages"]
    assert f"recorded {sum(counts.values())} messages on {len(TOPICS)} topics to {recorded['bag']} (mcap)" \
        in recorded["output"]


def test_rosbags_reader_opens_the_bag_with_the_bridges_counts_and_messages(recorded, tasks):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    result = recorded["result"]
    counts = result["recording"]["messages"]
    store = get_typestore(Stores.ROS2_HUMBLE)  # another distro's definitions: the messages are the same
    info = yaml.safe_load(open(f"{recorded['bag']}/metadata.yaml"))["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == "mcap" and info["version"] == 9  # what `ros2 bag info` reads
    with Reader(recorded["bag"]) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == TOPICS
        assert {c.topic: c.msgcount for c in reader.connections} == counts
        for c in reader.connections:  # what `ros2 bag info` and Foxglove decode with
            assert c.digest.startswith("RIHS01_"), c.topic
            assert c.msgdef.data.strip() or c.msgtype == "std_msgs/msg/Empty", c.topic  # Empty.msg is empty
        decoded = {topic: [] for topic in TOPICS}
        stamps = []
        for connection, stamp, raw in reader.messages():
            decoded[connection.topic].append(store.deserialize_cdr(raw, connection.msgtype))
            stamps.append(stamp)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    answered = EPISODES * STEPS
    assert counts["/effort_controller/commands"] == counts["/reward"] == answered
    assert counts["/clock"] == EPISODES * (STEPS + 1)  # each episode's start, then one per step
    assert counts["/joint_states"] == answered + result["republished_states"]  # the last state of each
    assert answered - 1 <= counts["/planner_node/planning_info"] <= answered   # episode is never sent
    assert [m.data for m in decoded["/sim_bridge/episode"]] == list(range(EPISODES))
    rewards = np.round([m.data for m in decoded["/reward"]], 4)
    np.testing.assert_array_equal(rewards, np.concatenate(result["episode_rewards"]))
    task = tasks["cartpole_swingup"]
    first = decoded["/joint_states"][0]
    assert list(first.name) == list(task.joint_names) and (first.header.stamp.sec, first.header.stamp.nanosec) == (0, 0)
    assert all(len(m.data) == 1 for m in decoded["/effort_controller/commands"])
    info = decoded["/planner_node/planning_info"][0]
    assert info.layout.dim[0].label == "stamp_s,planning_latency_s,predicted_return" and info.data[0] == 0.0


def test_mcap_reader_decodes_with_the_definitions_in_the_file(recorded):
    mcap_reader = pytest.importorskip("mcap.reader")
    mcap_ros2 = pytest.importorskip("mcap_ros2.decoder")

    result = recorded["result"]
    (path,) = [p for p in pathlib.Path(recorded["bag"]).glob("*.mcap")]
    with open(path, "rb") as f:
        reader = mcap_reader.make_reader(f, decoder_factories=[mcap_ros2.DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        channels = {c.topic: c for c in summary.channels.values()}
        assert {t: summary.schemas[c.schema_id].name for t, c in channels.items()} == TOPICS
        assert {summary.schemas[c.schema_id].encoding for c in channels.values()} == {"ros2msg"}
        assert {c.message_encoding for c in channels.values()} == {"cdr"}
        counts = {t: summary.statistics.channel_message_counts.get(c.id, 0) for t, c in channels.items()}
        assert counts == result["recording"]["messages"]
        rewards = [m.data for _, _, _, m in reader.iter_decoded_messages(topics=["/reward"])]
        states = [m for _, _, _, m in reader.iter_decoded_messages(topics=["/joint_states"])]
    np.testing.assert_array_equal(np.round(rewards, 4), np.concatenate(result["episode_rewards"]))
    assert states[0].name == ["slider", "hinge_1"] and len(states[0].position) == 2


def test_sqlite3_storage_holds_the_message_definitions_and_the_bridge_films_the_loop(tmp_path):
    from PIL import Image
    from rosbags.rosbag2 import Reader

    run = launch_recorded(tmp_path, "--steps", "12", "--episodes", "1", "--record-storage", "sqlite3",
                          "--video", str(tmp_path / "loop.gif"))
    assert run["result"]["video"] == str(tmp_path / "loop.gif")
    frames = Image.open(tmp_path / "loop.gif")
    assert frames.n_frames == 1 + 12 // 4  # the start, then every 4 control steps (25 frames per simulated s)
    assert np.asarray(frames.convert("RGB")).std() > 10  # not blank
    info = yaml.safe_load(open(f"{run['bag']}/metadata.yaml"))["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == "sqlite3"
    with Reader(run["bag"]) as reader:
        assert {c.topic: c.msgcount for c in reader.connections} == run["result"]["recording"]["messages"]
        assert sum(1 for c, _, _ in reader.messages() if c.topic == "/reward") == 12
    (db,) = pathlib.Path(run["bag"]).glob("*.db3")
    with sqlite3.connect(db) as connection:  # the table `ros2 bag` (Iron and later) reads definitions from
        definitions = dict(connection.execute("SELECT topic_type, encoded_message_definition FROM message_definitions"))
    assert set(definitions) == set(TOPICS.values())
    assert all(text for name, text in definitions.items() if name != "std_msgs/msg/Empty")
    assert "float64[] data" in definitions["std_msgs/msg/Float64MultiArray"]


def collector_reference(task, episode: int):
    """Episode `episode` as the collector records it, with the bridge's simulator seed and the actions of the
    in-process planner that the planner node runs (the last state of a recorded episode has no command after
    it, so the bag gives STEPS - 1 steps)."""
    config = EvalConfig(task="cartpole_swingup", model="mujoco", planner="warm_start",
                        planner_params=config_planner_params(), seed=SEED)
    controller = build_controller(config, task, episode)
    controller.reset()
    simulator = Simulator(task, seed=SEED + episode)

    def policy(t, observation, reward):
        positions, velocities, _ = simulator.joint_state()
        return controller.act(positions, velocities)[0], 1

    return play_episode(task, simulator, policy, STEPS - 1, 1, seed=episode)


@pytest.fixture(scope="module")
def imported(recorded, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("imported") / "data")
    import_bags([recorded["bag"]], folder, ImportConfig(task="cartpole_swingup"))
    return folder


def test_imported_bag_equals_the_collectors_episodes(imported, tasks):
    meta, episodes = load_dataset(imported)
    task = tasks["cartpole_swingup"]
    assert len(episodes) == EPISODES
    for i, episode in enumerate(episodes):
        expected = collector_reference(task, i)
        np.testing.assert_array_equal(episode.observations, expected.observations)
        np.testing.assert_allclose(episode.actions, expected.actions, rtol=0, atol=1e-15)  # (a * gear) / gear
        np.testing.assert_array_equal(episode.rewards, expected.rewards)
        assert episode.episode_return == pytest.approx(expected.episode_return, rel=1e-12)
    boundaries = [e["boundary"] for e in meta["import"]["episodes"]]
    assert boundaries == [f"episode {i} announced" for i in range(EPISODES)]


def test_a_tiny_tdm_trains_from_the_imported_folder(imported, tmp_path):
    from tdm_control.dynamics import make_dynamics
    from tdm_control.tasks import make_task
    from training.cli import main

    config = tmp_path / "from_bags.yaml"
    config.write_text(f"""
task: cartpole_swingup
data_dir: {imported}
run_dir: {tmp_path}/run
model_path: {tmp_path}/from_bags.onnx
model: {{d_model: 32, n_layers: 2, n_heads: 2, d_ff: 64, context_tokens: 24}}
train: {{batch_size: 8, sequence_tokens: 48, max_steps: 10, eval_every: 5, checkpoint_every: 10,
        warmup_steps: 2, learning_rate: 0.003, validation_fraction: 0.34, threads: 1}}
""")
    assert main(["fit", "--config", str(config), "--no-progress"]) == 0
    assert main(["export", "--config", str(config), "--no-progress"]) == 0
    dynamics = make_dynamics(str(tmp_path / "from_bags.onnx"), make_task("cartpole_swingup"))
    try:
        assert dynamics.action_repeat == 1
    finally:
        dynamics.close()


def test_a_bag_is_never_overwritten_and_a_failed_write_does_not_stop_the_node(tmp_path):
    from tdm_control.config import ConfigError
    from tdm_control.ros import messages as m
    from tdm_control.ros.bag import BagWriter, RecordingNode
    from tdm_control.ros.transport import COMMANDS, Logger

    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="bag .*taken exists already; a recording never overwrites one"):
        BagWriter(str(tmp_path / "taken"))
    with pytest.raises(ConfigError, match="bag storage 'rosbag1': choose one of mcap, sqlite3"):
        BagWriter(str(tmp_path / "new"), "rosbag1")

    class FakeNode:  # the part of a node RecordingNode uses
        def __init__(self):
            self.logger = Logger("fake", stream=open(tmp_path / "log.txt", "w"))
            self.callbacks = {}

        def resolve(self, topic):
            return topic

        def create_subscription(self, message_type, topic, callback, qos):
            self.callbacks[topic] = callback

    node = FakeNode()
    recording = RecordingNode(node, BagWriter(str(tmp_path / "bag")))
    received = []
    recording.create_subscription(m.Float64, "/x", received.append, COMMANDS)
    recording.bag.close()  # writing now fails: as a full disk would
    recording.bag.closed = False
    node.callbacks["/x"](m.Float64(data=1.5))
    assert received == [m.Float64(data=1.5)]
    node.logger.stream.close()
    assert "could not write a message on /x" in (tmp_path / "log.txt").read_text()


def test_a_realtime_run_imports_with_the_torques_the_bridge_applied(tmp_path, tasks):
    """Realtime, async planner: no in-process twin, but each joint state carries the force the last step
    applied (its `effort`), so every imported action can be checked against what the bridge really did."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    run = launch_recorded(tmp_path, "--mode", "realtime", "--steps", "150", "--episodes", "1")
    counts = run["result"]["recording"]["messages"]
    assert counts["/planner_node/planned_trajectory"] > 0 and counts["/planner_node/execution_info"] > 0
    section = import_bags([run["bag"]], str(tmp_path / "data"), ImportConfig(task="cartpole_swingup"))
    _, (episode,) = load_dataset(str(tmp_path / "data"))
    store = get_typestore(Stores.ROS2_JAZZY)
    effort = {}  # stamp (ns) -> slider force applied during the step that ended there (N)
    with Reader(run["bag"]) as reader:
        states = [c for c in reader.connections if c.topic == "/joint_states"]
        for connection, _, raw in reader.messages(connections=states):
            message = store.deserialize_cdr(raw, connection.msgtype)
            effort[message.header.stamp.sec * 10**9 + message.header.stamp.nanosec] = message.effort[0]
    start = round(section["episodes"][0]["start_stamp_s"] * 1e9)
    gear = tasks["cartpole_swingup"].gear[0]
    applied = np.array([effort[start + (t + 1) * 10_000_000] for t in range(len(episode))])
    np.testing.assert_allclose(episode.actions[:, 0] * gear, applied, rtol=1e-12, atol=1e-9)
    assert len(episode) >= 100  # the planner commands from its first plan on: few steps before it
