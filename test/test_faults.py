"""Faults and abuse, against the real node processes over real DDS (loopback, a private domain per test).

The attacker (`adversary.py`) speaks the ROS 2 wire format on its own, not through
the project's message code. Each class of bad input from issue 18 is shown to give a
clear error naming what was wrong (one line per second at most per kind, with a count
of the lines left out), zero torque or no step, the node alive, and the loop
recovering when good input returns. Counts and durations are bounded; nothing here
depends on how fast the machine is.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import numpy as np
import pytest
from adversary import (
    INBOX,
    LATCHED,
    RELIABLE,
    SENSOR,
    Adversary,
    Empty,
    Float64MultiArray,
    Inbox,
    Int32,
    JointState,
    String,
    command,
    joint_state,
    wait_until,
)
from ros_helpers import CARTPOLE_CONFIG, DEADLINE_S, ROOT, NodeProcess, params_args, ros_domain  # noqa: F401

PLANNER = "tdm_control.nodes.planner_node"
BRIDGE = "sim_bridge.bridge_node"
SMALL = {"samples": 8, "horizon": 5}
NAMES = ["slider", "hinge_1"]
GOOD = ([0.1, 3.0], [0.0, 0.5])
STEP_NS = 10_000_000
RESEND_S = 0.2
FAR_FUTURE_SEC = 2**31 - 1
"""The largest stamp a builtin_interfaces/Time can hold: year 2038."""


class FakeBridge:
    """The attacker in the bridge's place: announces episode 0, sends joint states, and reads each planner's
    commands and planning info (one of each per state answered; the info names the state's stamp)."""

    def __init__(self, adversary: Adversary,
                 planners=(("/effort_controller/commands", "/planner_node/planning_info"),)) -> None:
        self.states = adversary.writer("/joint_states", JointState, SENSOR)
        self.episode = adversary.writer("/sim_bridge/episode", Int32, LATCHED)
        self.planners = [(Inbox(adversary.reader(c, Float64MultiArray, INBOX)),
                          Inbox(adversary.reader(i, Float64MultiArray, INBOX))) for c, i in planners]

    def wait_for_planners(self) -> None:
        wait_until(lambda: len(self.states.get_matched_subscriptions()) >= len(self.planners) and all(
            c.reader.get_matched_publications() and i.reader.get_matched_publications() for c, i in self.planners),
            "the planners")
        self.episode.write(Int32(data=0))

    def answered(self, stamp_s: float) -> bool:
        """Whether every planner answered the state stamped `stamp_s`, and all its commands so far are in."""
        return all(any(x.data[0] == stamp_s for x in i.poll()) and len(c.poll()) == len(i.messages)
                   for c, i in self.planners)

    def send(self, state: JointState) -> list[list[float]]:
        """Publishes `state` until every planner answered it (re-sending, as a lockstep bridge does);
        returns each planner's command for it."""
        stamp_s = (state.header.stamp.sec * 10**9 + state.header.stamp.nanosec) * 1e-9
        deadline = time.monotonic() + DEADLINE_S
        while not self.answered(stamp_s):
            if time.monotonic() > deadline:
                pytest.fail(f"no answer to the joint state stamped {state.header.stamp} within {DEADLINE_S} s")
            self.states.write(state)
            resend = time.monotonic() + RESEND_S
            while time.monotonic() < resend and not self.answered(stamp_s):
                time.sleep(0.005)
        out = []
        for commands, info in self.planners:
            (index,) = [k for k, x in enumerate(info.messages) if x.data[0] == stamp_s]  # one state, one answer
            out.append(list(commands.messages[index].data))
        return out


def error_lines(process: NodeProcess, text: str) -> list[str]:
    return [line for line in process.lines if line.startswith("[ERROR]") and text in line]


def test_bad_joint_states_get_zero_torque_throttled_errors_and_the_planner_recovers(tmp_path, ros_domain):  # noqa: F811
    planner = NodeProcess.node(PLANNER, *params_args(
        tmp_path, {"planner_node": {"seed": 3, "model": "mujoco", "planner_params": SMALL}}))
    adversary, intruder = Adversary(ros_domain), Adversary(ros_domain)
    bridge = FakeBridge(adversary)
    t = iter(range(1, 10**6))  # stamps in control steps, always newer
    try:
        bridge.wait_for_planners()
        bad = [  # (names, positions, velocities, what the error says)
            ([], [], [], "missing joint(s) ['slider', 'hinge_1']"),
            (["slider", "slider", "hinge_1"], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0], "names joint 'slider' twice"),
            (NAMES, [0.0, float("nan")], [0.0, 0.0], "non-finite values: position[hinge_1]=nan"),
            (NAMES, [0.0, 0.0], [0.0], "2 names, 2 positions and 1 velocities"),
            # Finite, but no state of the robot: the old planner planned on these and sent full torque.
            (NAMES, [0.0, 1e300], [0.0, 0.0], "implausible for cartpole_swingup: position[hinge_1]=1e+300 outside"),
        ]
        for names, positions, velocities, error in bad:
            assert bridge.send(joint_state(next(t) * STEP_NS, names, positions, velocities)) == [[0.0]]
            planner.wait_for_output(r"\[ERROR\].*" + re.escape(error) + ".*; sent zero torque")
        assert bridge.send(joint_state(next(t) * STEP_NS, *[NAMES, *GOOD]))[0] != [0.0]  # planning goes on

        # A stream of varying bad states: at most one line per second for their kind, with a count of the rest.
        started = time.monotonic()
        for i in range(300):
            bridge.states.write(joint_state(next(t) * STEP_NS, NAMES, [0.0, 0.0], [0.0, 1e6 + i]))
        while not any("more like this" in line for line in error_lines(planner, "velocity[hinge_1]=")):
            bridge.send(joint_state(next(t) * STEP_NS, NAMES, [0.0, 0.0], [0.0, 2e6]))
        lines = error_lines(planner, "velocity[hinge_1]=")
        assert 1 <= len(lines) <= (time.monotonic() - started) / 1.0 + 2, lines
        suppressed = int(re.search(r"\[(\d+) more like this", [x for x in lines if "more like" in x][0]).group(1))
        assert suppressed >= 1

        # A flood of valid states (newest kept, the rest dropped): the planner keeps answering.
        for _ in range(300):
            bridge.states.write(joint_state(next(t) * STEP_NS, NAMES, *GOOD))
        assert bridge.send(joint_state(next(t) * STEP_NS, NAMES, *GOOD))[0] != [0.0]

        # A message of another type on /joint_states (a second participant): never delivered as a joint state.
        strings = intruder.writer("/joint_states", String, SENSOR)
        for _ in range(20):
            strings.write(String(data="joint_states"))
        assert bridge.send(joint_state(next(t) * STEP_NS, NAMES, *GOOD))[0] != [0.0]

        # A negative stamp: never taken, an error.
        bridge.states.write(joint_state(0, NAMES, *GOOD, sec=-5))
        planner.wait_for_output(r"\[ERROR\].*stamped -5\.0+ s: no ROS time is negative; ignored")

        # A forged stamp from the future is taken once; it cannot make later real states stale for good.
        forged = joint_state(0, NAMES, *GOOD, sec=FAR_FUTURE_SEC)
        bridge.send(forged)
        real = next(t) * STEP_NS
        assert bridge.send(joint_state(real, NAMES, *GOOD))[0] != [0.0]
        planner.wait_for_output(r"\[ERROR\].*3 joint states in a row on /joint_states are older than the one taken "
                                rf"last, stamped {FAR_FUTURE_SEC}\.000 s: that stamp was bad.*following these states "
                                rf"from {real * 1e-9:.3f} s")
        assert bridge.send(joint_state(next(t) * STEP_NS, NAMES, *GOOD))[0] != [0.0]  # and the next one at once
        assert planner.process.poll() is None
        assert "Traceback" not in planner.output
        assert planner.interrupt() == 0
    finally:
        planner.kill()
        adversary.close()
        intruder.close()


def test_a_forged_stamp_a_second_commander_and_a_reset_do_not_stall_the_closed_loop(tmp_path, ros_domain):  # noqa: F811
    args = params_args(tmp_path, {
        "sim_bridge": {"seed": 1, "episodes": 0, "steps": 60, "progress_period": 20},
        "planner_node": {"seed": 1, "model": "mujoco", "planner_params": SMALL}})
    bridge, planner = NodeProcess.node(BRIDGE, *args), NodeProcess.node(PLANNER, *args)
    adversary = Adversary(ros_domain)
    try:
        states = adversary.writer("/joint_states", JointState, SENSOR)
        bridge.wait_for_output(r"episode 0: step 20/60")
        wait_until(lambda: len(states.get_matched_subscriptions()) >= 1, "the planner's subscription")
        # The planner may not know this writer yet when the writer knows the planner (discovery is per side, and
        # a reader drops samples from writers it has not discovered): send the forged state until one is taken.
        deadline = time.monotonic() + DEADLINE_S
        while "that stamp was bad" not in planner.output:
            assert time.monotonic() < deadline, f"the forged stamp was never dropped:\n{planner.output}"
            states.write(joint_state(0, NAMES, *GOOD, sec=FAR_FUTURE_SEC))
            time.sleep(1.0)
        planner.wait_for_output(r"\[ERROR\].*that stamp was bad")
        seen = len(bridge.lines)
        wait_until(lambda: any(re.search(r"episode \d+ finished: 60 steps", x) for x in bridge.lines[seen:]),
                   "an episode to finish after the forged stamp")

        # A second publisher on the command topic: the bridge says so.
        commands = adversary.writer("/effort_controller/commands", Float64MultiArray, RELIABLE)
        bridge.wait_for_output(r"\[WARN\].*2 publishers on /effort_controller/commands: the bridge applies every "
                               "command as it comes")
        commands.write(command([0.0]))
        bridge.wait_for_output(r"\[WARN\].*commands on /effort_controller/commands alternate between publishers")

        # A reset request recovers the loop whatever state it is in.
        reset = adversary.writer("/sim_bridge/reset", Empty, RELIABLE)
        wait_until(lambda: reset.get_matched_subscriptions(), "the bridge's reset subscription")
        seen = len(bridge.lines)
        reset.write(Empty(structure_needs_at_least_one_member=0))
        bridge.wait_for_output(r"episode \d+ interrupted by a reset")
        wait_until(lambda: any(re.search(r"episode \d+: step 20/60", x) for x in bridge.lines[seen + 1:]),
                   "the next episode to run after the reset")
        assert bridge.interrupt() == 0 and planner.interrupt() == 0
    finally:
        bridge.kill()
        planner.kill()
        adversary.close()


@pytest.fixture(scope="module")
def broken_models(tiny_model, tmp_path_factory):
    """Models that cannot plan, made from the tiny exported TDM: {name: path}."""
    import onnx
    from onnx import numpy_helper

    from tdm_control.dynamics import metadata as model_metadata
    from training.export import write_metadata

    _, path, _ = tiny_model
    folder = tmp_path_factory.mktemp("broken")

    def metadata(proto):
        return model_metadata.decode({p.key: p.value for p in proto.metadata_props}[model_metadata.METADATA_KEY], path)

    def poisoned():
        proto = onnx.load(path)
        weight = next(t for t in proto.graph.initializer if "embedding" in t.name)
        values = numpy_helper.to_array(weight).copy()
        values.flat[7] = np.nan
        weight.CopyFrom(numpy_helper.from_array(values, weight.name))
        return proto

    out = {name: str(folder / f"{name}.onnx") for name in ("altered", "restamped", "mismatched", "truncated")}
    onnx.save(poisoned(), out["altered"])  # a NaN written into a weight after export: the digest no longer fits
    proto = poisoned()  # ...and re-exported with its digest: it loads, and predicts impossible returns
    onnx.save(proto, out["restamped"])
    write_metadata(out["restamped"], metadata(proto))
    proto = onnx.load(path)  # metadata that does not describe the graph: every plan raises in ONNX Runtime
    meta = metadata(proto)
    meta["model_config"] = {**meta["model_config"], "context_tokens": meta["context_tokens"] // 2}
    onnx.save(proto, out["mismatched"])
    write_metadata(out["mismatched"], meta)
    data = open(path, "rb").read()
    open(out["truncated"], "wb").write(data[: len(data) // 2])
    return out


def test_broken_models_and_impossible_sizes_mean_zero_torque_and_a_clear_error(tmp_path, ros_domain,  # noqa: F811
                                                                               broken_models):
    cases = [  # (planner parameters, the error logged)
        ({"model": broken_models["altered"]}, r"bad configuration: .*altered\.onnx is not the model that was "
                                              r"exported: its weights digest is"),
        ({"model": broken_models["truncated"]}, r"bad configuration: .*truncated\.onnx is not a loadable ONNX model"),
        ({"model": "mujoco", "planner_params": {"samples": 10**9, "horizon": 50}},
         r"bad configuration: planner_params: samples 1000000000 x horizon 50: one plan with model mujoco needs "
         r"about [0-9.e+]+ GiB, more than 50% of this machine's"),
        ({"model": broken_models["restamped"]}, r"the model predicted a return of -?[0-9.e+]+ over 5 steps, "
                                                r"impossible for rewards in \[0, 1\].*; sent zero torque"),
        ({"model": broken_models["mismatched"]}, r"planning failed: InvalidArgument: .*; sent zero torque"),
    ]
    topics = [(f"/commands_{i}", f"/info_{i}") for i in range(len(cases))]
    planners = [NodeProcess.node(PLANNER, *params_args(tmp_path, {"planner_node": {
        "planner_params": SMALL, **params, "command_topic": command_topic, "planning_info_topic": info_topic}}))
        for (params, _), (command_topic, info_topic) in zip(cases, topics)]
    adversary = Adversary(ros_domain)
    bridge = FakeBridge(adversary, topics)
    try:
        bridge.wait_for_planners()
        for step in range(3):
            assert bridge.send(joint_state(step * STEP_NS, NAMES, *GOOD)) == [[0.0]] * len(cases)
        for planner, (_, error) in zip(planners, cases):
            planner.wait_for_output(r"\[ERROR\].*" + error)
            assert planner.process.poll() is None and "Traceback" not in planner.output
        for planner in planners:
            assert planner.interrupt() == 0
    finally:
        for planner in planners:
            planner.kill()
        adversary.close()


def run(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE_S,
                          env=dict(os.environ, MUJOCO_GL="disable", **(env or {})))


@pytest.mark.parametrize("args, env, error", [
    (["-m", PLANNER, "--ros-args", "--params-file", "no/such/params.yaml"], {},
     "planner_node: error: parameter file no/such/params.yaml does not exist"),
    (["-m", BRIDGE, "--ros-args", "-p", "seed"], {}, "sim_bridge: error: -p 'seed': expected name:=value"),
    (["-m", PLANNER], {"ROS_DOMAIN_ID": "999"}, "planner_node: error: ROS_DOMAIN_ID=999 is outside 0..232"),
    (["-m", "tdm_control.cli", "launch", CARTPOLE_CONFIG, "--set", "planner_node.seed=["], {},
     "tdm-control: error: --set 'planner_node.seed=[': the value is not valid YAML"),
])
def test_command_line_errors_are_one_line_and_exit_status_2(args, env, error):
    result = run(args, env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(error), result.stderr
    assert "Traceback" not in result.stderr


def test_shadowed_and_foreign_overrides_are_warned_about_and_poison_nothing(tmp_path, ros_domain):  # noqa: F811
    args = params_args(tmp_path, {"sim_bridge": {"episodes": 0, "steps": 50, "progress_period": 0},
                                  "planner_node": {"seed": 3, "model": "mujoco", "planner_params": SMALL}})
    extra = ["-p", "seed:=7", "-p", "steps:=20", "-p", "samples:=4"]
    planner, bridge = NodeProcess.node(PLANNER, *args, *extra), NodeProcess.node(BRIDGE, *args, *extra)
    try:
        planner.wait_for_output(r"\[WARN\].*-p seed:=7 does not reach /planner_node: its own entry seed: 3 "
                                r"\(from .*overrides-0\.yaml\) wins, as in rclcpp; write -p planner_node:seed:=7 to "
                                "override it")
        for name in ("steps", "samples"):
            planner.wait_for_output(rf"\[WARN\].*parameter {name} \(given to all nodes\) is not a parameter of "
                                    "planner_node: ignored here")
        planner.wait_for_output(r"\[INFO\].*planning: task cartpole_swingup, model mujoco.*seed 3")
        # The bridge has steps (the -p loses to its own entry) and seed (it takes -p's 7), not samples.
        bridge.wait_for_output(r"\[WARN\].*-p steps:=20 does not reach /sim_bridge: its own entry steps: 50")
        bridge.wait_for_output(r"\[WARN\].*parameter samples \(given to all nodes\) is not a parameter of sim_bridge")
        bridge.wait_for_output(r"\[INFO\].*lockstep simulation of cartpole_swingup.*50 steps per episode.*seed 7")
        assert "bad configuration" not in planner.output
        assert planner.interrupt() == 0 and bridge.interrupt() == 0
    finally:
        planner.kill()
        bridge.kill()


def test_every_class_of_bad_input_is_in_the_ros_doc():
    """docs/ros.md's table names each class this file tests."""
    text = open(f"{ROOT}/docs/ros.md").read()
    section = text[text.index("## What bad input does"):]
    for phrase in ("forged", "implausible", "planning fails", "weights digest", "impossible", "one line",
                   "does not reach", "publishers", "negative", "more like this"):
        assert phrase in section, phrase
