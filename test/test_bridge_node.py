"""The bridge node as a real process over DDS: bad commands become zero torque, nothing else changes.

The test plays the planner. It checks every state the bridge publishes against
an in-process simulator stepped with the torque that should have been applied:
zero for a command of the wrong length or with NaN/inf, the command otherwise.
"""

import re

import numpy as np
from ros_helpers import NodeProcess, params_args, ros_domain, spin_until  # noqa: F401 (fixture)

from tdm_control.ros import messages as m
from tdm_control.ros.embedded import EmbeddedNode
from tdm_control.ros.transport import COMMANDS, LATCHED, SENSOR_DATA
from tdm_control.tasks.simulator import Simulator

STEP_NS = 10_000_000


class FakePlanner:
    """The planner's side of the loop, in the test process."""

    def __init__(self) -> None:
        self.node = EmbeddedNode("fake_planner", [])
        self.states: list[m.JointState] = []
        self.rewards: list[float] = []
        self.episodes: list[int] = []
        self.node.create_subscription(m.JointState, "/joint_states", self.states.append, SENSOR_DATA)
        self.reward_sub = self.node.create_subscription(m.Float64, "/reward", lambda r: self.rewards.append(r.data),
                                                        COMMANDS)
        self.node.create_subscription(m.Int32, "/sim_bridge/episode", lambda e: self.episodes.append(e.data), LATCHED)
        self.commands = self.node.create_publisher(m.Float64MultiArray, "/effort_controller/commands", COMMANDS)
        self.reset = self.node.create_publisher(m.Empty, "/sim_bridge/reset", COMMANDS)

    def state_at(self, stamp_ns: int, episode: int) -> m.JointState:
        """Waits for the state stamped `stamp_ns` in `episode` (the bridge re-sends it until answered)."""
        def arrived():
            return self.episodes and self.episodes[-1] == episode and any(
                s.header.stamp.to_ns() == stamp_ns for s in self.states)
        spin_until(self.node, arrived, what=f"the state at {stamp_ns} ns of episode {episode}")
        state = [s for s in self.states if s.header.stamp.to_ns() == stamp_ns][-1]
        self.states.clear()
        return state


def assert_same_state(state: m.JointState, simulator: Simulator) -> None:
    positions, velocities, efforts = simulator.joint_state()
    assert state.name == list(simulator.task.joint_names)
    assert state.position == positions.tolist() and state.velocity == velocities.tolist()
    assert state.effort == efforts.tolist()


def test_bad_commands_apply_zero_torque_and_the_bridge_goes_on(tmp_path, ros_domain, tasks):  # noqa: F811
    bridge = NodeProcess.node("sim_bridge.bridge_node", *params_args(
        tmp_path, {"sim_bridge": {"seed": 4, "episodes": 0, "steps": 50, "progress_period": 0}}))
    planner = FakePlanner()
    try:
        spin_until(planner.node, lambda: planner.commands.subscription_count and planner.reset.subscription_count
                   and planner.reward_sub.publisher_count, what="the bridge's subscriptions and reward publisher")
        reference = Simulator(tasks["cartpole_swingup"], seed=4)
        reference.reset()
        assert_same_state(planner.state_at(0, episode=0), reference)
        cases = [([1.0, 2.0], 0.0, "command has 2 values; expected 1, one per joint ['slider']"),
                 ([float("nan")], 0.0, "command has non-finite values: slider=nan"),
                 ([float("inf")], 0.0, None),  # the NaN's kind of error: its line may be throttled (test_faults)
                 ([5.0], 5.0, None),
                 ([-50.0], -10.0, None)]  # clamped to the actuator's limit (gear 10 N, control range 1)
        for step, (command, applied, error) in enumerate(cases, start=1):
            planner.commands.publish(m.Float64MultiArray(data=command))
            state = planner.state_at(step * STEP_NS, episode=0)
            reward = reference.step(np.array([applied]))
            assert_same_state(state, reference)
            assert state.effort[0] == applied
            spin_until(planner.node, lambda: len(planner.rewards) == step, what="the reward")
            assert planner.rewards[-1] == reward
            if error:
                bridge.wait_for_output(r"\[ERROR\].*bad command on /effort_controller/commands: "
                                       + re.escape(error) + "; applying zero torque")
        assert bridge.process.poll() is None, "the bridge must keep running"

        # A reset request: the command in flight answers nothing, and episode 1 starts from seed 4 + 1.
        planner.reset.publish(m.Empty())
        bridge.wait_for_output(r"reset requested on /sim_bridge/reset")
        planner.commands.publish(m.Float64MultiArray(data=[1.0]))
        bridge.wait_for_output(r"episode 0 interrupted by a reset after 5 steps")
        next_episode = Simulator(tasks["cartpole_swingup"], seed=5)
        next_episode.reset()
        assert_same_state(planner.state_at(0, episode=1), next_episode)
        assert bridge.interrupt() == 0
    finally:
        bridge.kill()
        planner.node.close()
