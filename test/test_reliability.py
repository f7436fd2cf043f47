"""The reliability rules of issue 18, without processes: stamps, plausible states, answers when planning
fails, memory bounds, throttling by kind, model integrity, parameter traps. test_faults.py runs the
same classes against the real nodes."""

import dataclasses
import io
import re

import numpy as np
import pytest

from tdm_control.config import ConfigError
from tdm_control.dynamics import make_dynamics
from tdm_control.dynamics import metadata as model_metadata
from tdm_control.nodes.joints import BadInput, JointStateReader
from tdm_control.nodes.planner_core import PlannerCore, PlannerNodeConfig, impossible_return
from tdm_control.nodes.stamps import STALE_RUN, StampPolicy
from tdm_control.planning import check_plan_memory, planner_config
from tdm_control.ros.params import own_parameters, parse_ros_args, shadowed_overrides, wildcard_names
from tdm_control.ros.transport import Logger

NAMES = ("slider", "hinge_1")
SMALL = {"samples": 8, "horizon": 5}
CONFIG = PlannerNodeConfig(planner_params=SMALL, seed=3, joints=("slider",))
MS = 1_000_000


# ----------------------------------------------------------------------------- stamps
def test_the_stamp_policy_sorts_resends_new_stale_bad_and_drops_a_forged_stamp():
    policy = StampPolicy(uses_episode_topic=True)
    assert policy.check(10 * MS).take  # the first, whatever its stamp
    assert policy.check(20 * MS).take
    resend = policy.check(20 * MS)
    assert not resend.take and resend.level == "debug" and resend.kind == "re-send"
    bad = policy.check(-1)
    assert not bad.take and bad.level == "error" and "no ROS time is negative" in bad.message
    forged = (2**31 - 1) * 1_000_000_000
    assert policy.check(forged).take  # a forged stamp is taken once...
    for _ in range(1, STALE_RUN):  # ...then real states are stale for a bounded run, re-sends included
        stale = policy.check(30 * MS)
        assert not stale.take and stale.level == "warning" and "older than the one taken last" in stale.message
    dropped = policy.check(30 * MS)
    assert dropped.take and dropped.restart and dropped.level == "error"
    assert "that stamp was bad" in dropped.message and "from 0.030 s" in dropped.message
    assert policy.check(40 * MS).take and not policy.check(40 * MS).take


def test_a_stale_state_among_new_ones_never_drops_the_last_stamp():
    policy = StampPolicy(uses_episode_topic=True)
    for t in range(10):
        assert policy.check(t * 10 * MS).take
        if t:  # one straggler of an earlier step between each two states: never STALE_RUN in a row
            assert not policy.check((t - 1) * 10 * MS).take


def test_without_an_episode_topic_time_going_back_is_a_new_episode():
    policy = StampPolicy(uses_episode_topic=False)
    policy.check(50 * MS)
    verdict = policy.check(0)
    assert verdict.take and verdict.new_episode and verdict.level == "info"


def test_a_forged_stamp_costs_the_lockstep_core_a_bounded_run_and_the_episode_restarts(tasks):
    core = PlannerCore(CONFIG)
    core.set_episode(0)
    assert core.on_joint_state(0, NAMES, [0.0, 3.0], [0.0, 0.0]).error is None
    assert core.on_joint_state((2**31 - 1) * 10**9, NAMES, [0.0, 3.0], [0.0, 0.0]) is not None
    first_controller = core.controller
    answers = [core.on_joint_state(10 * MS, NAMES, [0.01, 3.0], [0.0, 0.0]) for _ in range(STALE_RUN)]
    assert answers[:-1] == [None] * (STALE_RUN - 1) and answers[-1].error is None
    assert core.controller is not first_controller  # the history held the forged state: planned afresh
    core.close()


# ----------------------------------------------------------------------------- plausible states
@pytest.mark.parametrize("positions, velocities, kind, text", [
    ([0.0, 1e300], [0.0, 0.0], "implausible joint state", "position[hinge_1]=1e+300 outside [-10000, 10000]"),
    ([5.0, 0.0], [0.0, 0.0], "implausible joint state", "position[slider]=5 outside [-3.6, 3.6]"),
    ([0.0, 0.0], [0.0, -1e6], "implausible joint state", "velocity[hinge_1]=-1e+06 beyond +-200"),
    ([0.0, 0.0], [0.0, float("inf")], "non-finite joint state", "velocity[hinge_1]=inf"),
])
def test_states_no_robot_has_are_refused_before_planning(tasks, positions, velocities, kind, text):
    reader = JointStateReader(tasks["cartpole_swingup"])
    with pytest.raises(BadInput) as error:
        reader.observe(NAMES, positions, velocities)
    assert error.value.kind == kind and text in str(error.value)


def test_plausible_ranges_hold_what_the_simulator_reaches_and_the_model_limit_applies(tasks):
    from tdm_control.planning.noise import brownian_noise
    from tdm_control.tasks.simulator import Simulator

    for task in tasks.values():  # bang-bang Brownian actions: the most violent driving the tests know
        reader = JointStateReader(task)
        simulator = Simulator(task, seed=0)
        simulator.reset()
        actions = brownian_noise(np.random.default_rng(0), 1, 300, task.action_size, 2.0)[0]
        for action in actions:
            q, v, _ = simulator.joint_state()
            reader.observe(task.joint_names, q, v)
            simulator.step(task.action_to_torque(np.sign(action)))
    reader = JointStateReader(tasks["cartpole_swingup"], observation_limit=10.0)
    with pytest.raises(BadInput, match=r"velocity\[1\]=50 is not finite or beyond \+-10") as error:
        reader.observe(NAMES, [0.0, 0.0], [0.0, 50.0])
    assert error.value.kind == "bad observation"


# ----------------------------------------------------------------------------- answers and plans
def test_a_plan_that_raises_is_answered_with_zero_torque_and_planning_resumes(tasks):
    core = PlannerCore(CONFIG)
    core.set_episode(0)
    rollout = core.dynamics.rollout

    def out_of_memory(*args):
        raise MemoryError("Unable to allocate 1.2 TiB for an array")

    core.dynamics.rollout = out_of_memory
    answer = core.on_joint_state(0, NAMES, [0.0, 3.0], [0.0, 0.0])
    assert answer.command.tolist() == [0.0] and answer.kind == "planning failed"
    assert answer.error == "planning failed: MemoryError: Unable to allocate 1.2 TiB for an array"
    core.dynamics.rollout = rollout
    assert core.on_joint_state(10 * MS, NAMES, [0.0, 3.0], [0.0, 0.0]).error is None
    core.close()


def test_an_impossible_predicted_return_means_zero_torque_also_for_the_steps_it_would_hold(tasks):
    core = PlannerCore(dataclasses.replace(CONFIG, objective="predicted", action_repeat=2))
    core.set_episode(0)
    rollout = core.dynamics.rollout

    def broken(history, obs, actions):
        pred_obs, pred_reward = rollout(history, obs, actions)
        return pred_obs, pred_reward - 40.0  # what a model with a NaN weight predicts: far below 0

    core.dynamics.rollout = broken
    planned = core.on_joint_state(0, NAMES, [0.0, 3.0], [0.0, 0.0])
    held = core.on_joint_state(10 * MS, NAMES, [0.0, 3.0], [0.0, 0.0])  # action repeat 2: the plan's action held
    for answer in (planned, held):
        assert answer.command.tolist() == [0.0] and answer.kind == "impossible prediction"
        assert re.search(r"predicted a return of -[0-9.]+ over 5 steps, impossible for rewards in \[0, 1\]",
                         answer.error)
    core.dynamics.rollout = rollout
    assert core.on_joint_state(20 * MS, NAMES, [0.0, 3.0], [0.0, 0.0]).error is None
    core.close()


def test_predicted_returns_are_possible_within_the_quantisation_slack():
    assert impossible_return(0.0, 10) is None and impossible_return(10.0, 10) is None
    assert impossible_return(-0.4, 10) is None and impossible_return(10.4, 10) is None
    for value in (-0.6, 10.6, float("nan"), float("-inf")):
        assert "impossible for rewards in [0, 1]" in impossible_return(value, 10)


def test_planner_sizes_are_bounded_by_memory(tasks):
    task = tasks["cartpole_swingup"]
    dynamics = make_dynamics("mujoco", task, nthread=1)
    config = planner_config("warm_start", {"samples": 64, "horizon": 75})
    check_plan_memory(config, dynamics, task.action_size)  # the shipped setting fits anywhere
    with pytest.raises(ConfigError, match=r"samples 64 x horizon 75: one plan with model mujoco needs about "
                                          r"[0-9.]+ GiB, more than 50% of this machine's 0.000977 GiB"):
        check_plan_memory(config, dynamics, task.action_size, memory_bytes=2**20)
    core = PlannerCore(dataclasses.replace(CONFIG, planner_params={"samples": 10**9, "horizon": 50}))
    assert core.error.startswith("planner_params: samples 1000000000 x horizon 50")
    dynamics.close()


# ----------------------------------------------------------------------------- logging
def test_throttling_is_by_kind_not_text_and_counts_what_it_left_out(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("tdm_control.ros.transport.time.monotonic", lambda: clock[0])
    stream = io.StringIO()
    log = Logger("node", stream=stream)

    def bad(value, kind="implausible"):
        log.error(f"joint state is implausible: velocity={value}", throttle_s=1.0, throttle_key=kind)

    for i in range(500):  # a stream of varying messages, 1 ms apart
        bad(1e6 + i)
        clock[0] += 0.001
    bad(0.0, kind="missing joint")  # another kind passes at once
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "velocity=1000000.0" in lines[0] and "missing joint" not in lines[0]
    clock[0] += 1.0
    bad(7.0)
    last = stream.getvalue().splitlines()[-1]
    assert "velocity=7.0 [499 more like this in the last 1.5 s not shown]" in last
    assert len(log._last) == 2  # one entry per kind, whatever the texts


# ----------------------------------------------------------------------------- model integrity
def test_exported_models_carry_a_digest_that_is_checked_at_load(tiny_model, tmp_path, tasks):
    import onnx

    _, path, _ = tiny_model
    proto = onnx.load(path)
    meta = model_metadata.decode({p.key: p.value for p in proto.metadata_props}[model_metadata.METADATA_KEY], path)
    assert meta[model_metadata.DIGEST_KEY] == model_metadata.file_weights_digest(path)
    model = make_dynamics(path, tasks["cartpole_swingup"], threads=1)
    assert model.warnings == ()
    model.close()
    proto.doc_string = "changed after export"  # anything but the metadata counts
    altered = str(tmp_path / "altered.onnx")
    onnx.save(proto, altered)
    with pytest.raises(ConfigError, match="altered.onnx is not the model that was exported"):
        make_dynamics(altered, tasks["cartpole_swingup"], threads=1)


def test_the_shipped_models_carry_a_digest_and_an_older_model_without_one_loads_with_a_warning(tasks, tmp_path):
    import onnx

    model = make_dynamics("models/cartpole_swingup_tdm.onnx", tasks["cartpole_swingup"], threads=1)
    assert model.warnings == () and model.observation_limit == 256.0
    model.close()
    proto = onnx.load("models/cartpole_swingup_tdm.onnx")  # as exported before digests were written
    entry = proto.metadata_props[0]
    meta = model_metadata.decode(entry.value, "shipped")
    meta.pop(model_metadata.DIGEST_KEY)
    entry.value = model_metadata.encode(meta)
    legacy = str(tmp_path / "legacy.onnx")
    onnx.save(proto, legacy)
    model = make_dynamics(legacy, tasks["cartpole_swingup"], threads=1)
    assert len(model.warnings) == 1 and "carries no weights digest" in model.warnings[0]
    model.close()


def test_the_digest_reader_refuses_bytes_that_are_not_protobuf():
    with pytest.raises(ValueError):
        model_metadata.weights_digest(b"\x0a\xff\xff\xff\xff\x0f")  # a length far past the end
    assert model_metadata.weights_digest(b"") == model_metadata.weights_digest(b"\x72\x00")  # field 14 is skipped


# ----------------------------------------------------------------------------- parameters
def test_a_plain_override_shadowed_by_the_nodes_own_entry_is_reported(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters: {seed: 0}\nplanner_node:\n  ros__parameters: {seed: 5}\n")
    ros = parse_ros_args(["--ros-args", "--params-file", str(params), "-p", "seed:=7", "-p", "steps:=3"])
    (warning,) = shadowed_overrides(ros, "/planner_node")
    assert warning == (f"-p seed:=7 does not reach /planner_node: its own entry seed: 5 (from {params}) wins, as in "
                       "rclcpp; write -p planner_node:seed:=7 to override it")
    assert shadowed_overrides(ros, "/sim_bridge") == []  # the bridge has no entry of its own: -p reaches it
    assert wildcard_names(ros, "/planner_node") == {"steps"}
    kept, ignored = own_parameters(PlannerNodeConfig, {"seed": 5, "steps": 3}, {"steps"}, "planner_node")
    assert kept == {"seed": 5} and ignored == ["parameter steps (given to all nodes) is not a parameter of "
                                               "planner_node: ignored here"]
    kept, ignored = own_parameters(PlannerNodeConfig, {"stpes": 3}, set(), "planner_node")
    assert kept == {"stpes": 3} and ignored == []  # set for this node: stays, and is an error later
