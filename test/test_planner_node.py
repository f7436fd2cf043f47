"""The planner node as a real process over DDS: one answer per state, zero torque for anything bad.

The test plays the bridge: it announces the episode, publishes joint states
(re-sending each until it is answered, as the lockstep bridge does) and reads
the commands back.
"""

import math
import re
import time

import numpy as np
import pytest
from ros_helpers import (  # noqa: F401
    DEADLINE_S,
    NodeProcess,
    models_a_cartpole_planner_must_refuse,
    params_args,
    ros_domain,
    spin_until,
)

from tdm_control.controller import build_controller
from tdm_control.nodes.planner_core import PlannerNodeConfig
from tdm_control.ros import messages as m
from tdm_control.ros.embedded import EmbeddedNode
from tdm_control.ros.transport import COMMANDS, LATCHED, SENSOR_DATA

SMALL = {"samples": 8, "horizon": 5}
RESEND_S = 0.2
NAMES = ["slider", "hinge_1"]


class FakeBridge:
    def __init__(self, command_topics=("/effort_controller/commands",)) -> None:
        self.node = EmbeddedNode("fake_bridge", [])
        self.states = self.node.create_publisher(m.JointState, "/joint_states", SENSOR_DATA)
        self.episode = self.node.create_publisher(m.Int32, "/sim_bridge/episode", LATCHED)
        self.commands = {topic: [] for topic in command_topics}
        self.subscriptions = [self.node.create_subscription(m.Float64MultiArray, topic, self.commands[topic].append,
                                                            COMMANDS) for topic in command_topics]
        self.info = []
        self.node.create_subscription(m.Float64MultiArray, "/planner_node/planning_info", self.info.append, COMMANDS)

    def wait_for_planners(self) -> None:
        spin_until(self.node, lambda: all(s.publisher_count for s in self.subscriptions)
                   and self.states.subscription_count >= len(self.subscriptions), what="the planners")

    def send(self, stamp_ns, names, positions, velocities) -> list[float]:
        """Publishes a joint state until every planner answered it; returns the (first topic's) command."""
        state = m.JointState(header=m.Header(stamp=m.Time.from_ns(stamp_ns)), name=list(names),
                             position=list(positions), velocity=list(velocities), effort=[0.0] * len(names))
        before = {topic: len(commands) for topic, commands in self.commands.items()}

        def answered():
            return all(len(self.commands[topic]) > before[topic] for topic in before)

        deadline = time.monotonic() + DEADLINE_S
        while not answered():
            if time.monotonic() > deadline:
                pytest.fail(f"no answer to the joint state at {stamp_ns} ns within {DEADLINE_S} s")
            self.states.publish(state)
            resend = time.monotonic() + RESEND_S
            while not answered() and time.monotonic() < resend:
                self.node.spin_once(0.05)
        for topic in before:
            assert len(self.commands[topic]) == before[topic] + 1, f"{topic}: one state, one command"
        return next(iter(self.commands.values()))[-1].data

    def last_commands(self) -> list[list[float]]:
        return [commands[-1].data for commands in self.commands.values()]


def test_bad_joint_states_get_zero_torque_and_planning_goes_on(tmp_path, ros_domain, tasks):  # noqa: F811
    planner = NodeProcess.node("tdm_control.nodes.planner_node", *params_args(
        tmp_path, {"planner_node": {"seed": 3, "model": "mujoco", "planner_params": SMALL}}))
    bridge = FakeBridge()
    try:
        bridge.wait_for_planners()
        bridge.episode.publish(m.Int32(data=0))
        bad = [
            (["hinge_1"], [0.0], [0.0], "joint state is missing joint(s) ['slider']"),
            (NAMES, [0.0, math.nan], [0.0, 0.0], "joint state has non-finite values: position[hinge_1]=nan"),
            # The same kind of error as the NaN: its log line may be throttled (test_faults checks the counts).
            (NAMES, [0.0, 0.0], [math.inf, 0.0], None),
            (NAMES, [0.0, 0.0], [0.0], "joint state has 2 names, 2 positions and 1 velocities"),
        ]
        for t, (names, positions, velocities, error) in enumerate(bad):
            assert bridge.send(t * 10_000_000, names, positions, velocities) == [0.0]
            if error:
                planner.wait_for_output(r"\[ERROR\].*" + re.escape(error) + ".*; sent zero torque")
        assert planner.process.poll() is None, "the planner must keep running"

        config = PlannerNodeConfig(planner_params=SMALL, seed=3)
        reference = build_controller(config, tasks["cartpole_swingup"], episode=0)
        reference.reset()
        good = [([0.1, 3.0], [0.0, 0.5]), ([0.11, 3.01], [0.2, 0.4])]
        first = bridge.send(10 * 10_000_000, NAMES, *good[0])
        assert first == reference.act(np.array(good[0][0]), np.array(good[0][1]))[1].tolist()
        # A re-send of the state just answered gets nothing; the next state gets the next plan.
        count = len(bridge.commands["/effort_controller/commands"])
        bridge.states.publish(m.JointState(header=m.Header(stamp=m.Time.from_ns(10 * 10_000_000)), name=NAMES,
                                           position=good[0][0], velocity=good[0][1]))
        second = bridge.send(11 * 10_000_000, NAMES, *good[1])
        assert len(bridge.commands["/effort_controller/commands"]) == count + 1
        assert second == reference.act(np.array(good[1][0]), np.array(good[1][1]))[1].tolist()
        spin_until(bridge.node, lambda: bridge.info and bridge.info[-1].data[0] == 0.11, what="planning info")
        stamp_s, latency_s, predicted_return = bridge.info[-1].data
        assert latency_s > 0 and np.isfinite(predicted_return)
        assert bridge.info[-1].layout.dim[0].label == "stamp_s,planning_latency_s,predicted_return"
        assert planner.interrupt() == 0
    finally:
        planner.kill()
        bridge.node.close()


def test_bad_configuration_is_reported_and_every_state_gets_zero_torque(tmp_path, ros_domain, walker_model):  # noqa: F811
    cases = [({"task": "cartpole_swingdown"}, "task: unknown task 'cartpole_swingdown'"),
             ({"planner_params": {"samlpes": 8}}, "did you mean 'samples'"),
             ({"sampels": 8}, "bad parameter sampels: unknown key")]
    cases += [({"model": model}, f"model: {model!r}")
              for model, _ in models_a_cartpole_planner_must_refuse(tmp_path, walker_model)]
    topics = [f"/commands_{i}" for i in range(len(cases))]
    planners = [NodeProcess.node("tdm_control.nodes.planner_node", *params_args(
        tmp_path, {"planner_node": {**params, "command_topic": topic}})) for (params, _), topic in zip(cases, topics)]
    bridge = FakeBridge(topics)
    try:
        bridge.wait_for_planners()
        bridge.episode.publish(m.Int32(data=0))
        for planner, (_, error) in zip(planners, cases):
            planner.wait_for_output(r"\[ERROR\].*bad configuration: .*" + re.escape(error))
        for t in range(2):
            bridge.send(t * 10_000_000, NAMES, [0.0, 3.0], [0.0, 0.0])
            assert bridge.last_commands() == [[0.0]] * len(topics)
        for planner, (_, error) in zip(planners, cases):
            planner.wait_for_output(r"\[ERROR\].*cannot plan, bad configuration: .*" + re.escape(error)
                                    + ".*; sent zero torque")
            assert planner.interrupt() == 0
    finally:
        for planner in planners:
            planner.kill()
        bridge.node.close()
