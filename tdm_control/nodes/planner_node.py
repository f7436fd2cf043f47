"""The planner node: joint states in, MPC torque commands out.

    ros2 run tdm_control planner_node --ros-args --params-file config/cartpole.yaml
    python -m tdm_control.nodes.planner_node --ros-args --params-file config/cartpole.yaml   # no ROS 2 needed

Subscribes /joint_states (best-effort, newest only) and the bridge's latched
episode topic; publishes /effort_controller/commands and ~/planning_info. All
logic is in `tdm_control.nodes.planner_core`; this module converts messages.
"""

from __future__ import annotations

import sys
import time
from typing import Sequence

from tdm_control.nodes.planner_core import PLANNING_INFO_LABEL, Answer, PlannerCore, PlannerNodeConfig
from tdm_control.ros import messages as msg
from tdm_control.ros.params import parameters_of, salvage_config
from tdm_control.ros.transport import COMMANDS, LATCHED, LATEST_SENSOR_DATA, Node, make_node

NODE_NAME = "planner_node"


class PlannerNode:
    """Wires a `PlannerCore` to topics."""

    def __init__(self, node: Node, config: PlannerNodeConfig, parameter_error: str | None = None) -> None:
        self.node = node
        self.log = node.logger
        self.config = config
        self.core = PlannerCore(config, parameter_error)
        node.declare_parameters(parameters_of(config))
        self.pub_command = node.create_publisher(msg.Float64MultiArray, config.command_topic, COMMANDS)
        self.pub_info = node.create_publisher(msg.Float64MultiArray, config.planning_info_topic, COMMANDS)
        node.create_subscription(msg.JointState, config.joint_states_topic, self.on_joint_state, LATEST_SENSOR_DATA)
        if config.episode_topic:
            node.create_subscription(msg.Int32, config.episode_topic, self.on_episode, LATCHED)
        node.create_timer(config.state_timeout / 2, self.watchdog)
        self.last_state = time.monotonic()
        self.silent = False
        if self.core.error:
            self.log.error(f"bad configuration: {self.core.error}. The node keeps running and answers every "
                           "joint state with zero torque until it is restarted with good parameters")
        else:
            self.log.info(f"planning: {self.core.describe()}")
        self.log.info(f"listening on {config.joint_states_topic}, commanding on {config.command_topic}")

    def on_episode(self, message: msg.Int32) -> None:
        self.core.set_episode(message.data)
        self.log.info(f"episode {message.data}")

    def on_joint_state(self, message: msg.JointState) -> None:
        self.last_state = time.monotonic()
        if self.silent:
            self.silent = False
            self.log.info(f"joint states on {self.config.joint_states_topic} again")
        answer = self.core.on_joint_state(message.header.stamp.to_ns(), message.name, message.position,
                                          message.velocity)
        if answer is None:
            if self.core.episode is None:
                self.log.info(f"waiting for the episode on {self.node.resolve(self.config.episode_topic)}",
                              throttle_s=5.0)
            return
        self.publish(answer)

    def publish(self, answer: Answer) -> None:
        self.pub_command.publish(msg.Float64MultiArray(data=answer.command.tolist()))
        self.pub_info.publish(msg.vector([answer.stamp_ns * 1e-9, answer.latency_s, answer.predicted_return],
                                         PLANNING_INFO_LABEL))
        if answer.error:
            self.log.error(f"{answer.error}; sent zero torque", throttle_s=1.0)

    def watchdog(self) -> None:
        silence = time.monotonic() - self.last_state
        if silence > self.config.state_timeout and not self.silent:
            self.silent = True
            self.log.warning(f"no joint state on {self.config.joint_states_topic} for {silence:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the planner until stopped (exit status 0). Bad parameters are reported, not fatal."""
    node = make_node(NODE_NAME, argv)
    planner = None
    try:
        config, error = salvage_config(PlannerNodeConfig, node.parameters)
        planner = PlannerNode(node, config, error and f"bad parameter {error}")
        try:
            node.spin()
        except KeyboardInterrupt:
            node.logger.info("interrupted")
        return 0
    finally:
        if planner is not None:
            planner.core.close()
        node.close()


if __name__ == "__main__":
    sys.exit(main())
