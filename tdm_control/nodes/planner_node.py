"""The planner node: joint states in, MPC torque commands out.

    ros2 run tdm_control planner_node --ros-args --params-file config/cartpole.yaml
    python -m tdm_control.nodes.planner_node --ros-args --params-file config/cartpole.yaml   # no ROS 2 needed

Subscribes /joint_states (best-effort, newest only) and the bridge's latched
episode topic; publishes /effort_controller/commands and ~/planning_info, and
with `execution: async` also ~/planned_trajectory and ~/execution_info. All
logic is in `tdm_control.nodes.planner_core` (lockstep) and
`tdm_control.nodes.async_core` (async); this module converts messages.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Sequence

import numpy as np

from tdm_control.config import ConfigError
from tdm_control.nodes.async_core import AsyncCore, Tick, execution_status_code
from tdm_control.nodes.planner_core import LOG_THROTTLE_S, PLANNING_INFO_LABEL, Answer, PlannerCore, PlannerNodeConfig
from tdm_control.nodes.trajectory import Trajectory
from tdm_control.ros import messages as msg
from tdm_control.ros.params import own_parameters, parameters_of, salvage_config
from tdm_control.ros.transport import COMMANDS, LATCHED, LATEST_SENSOR_DATA, Node, command_line_error, make_node

NODE_NAME = "planner_node"
CLOCK_MISMATCHES_TO_WARN = 10
"""async: joint states in a row stamped further than max_plan_age from the node's clock before a warning
(one alone can be a state that overtook its /clock at start-up)."""
RUNTIME_CONSTRAINTS = ("can change while the node runs (ros2 param set): checked as the parameter file is, "
                       "used from the next plan on")
"""ParameterDescriptor.additional_constraints of the run-time planner parameters."""
EXECUTION_INFO_LABEL = "time_s,plan_stamp_s,status"
"""Layout of ~/execution_info: tick time (s), stamp of the plan played (s, NaN for none), status code
(the index in async_core.STATUSES: 0 ok, 1 expired, 2 no plan, 3 error)."""


class PlannerNode:
    """Wires a `PlannerCore` to topics."""

    def __init__(self, node: Node, config: PlannerNodeConfig, parameter_error: str | None = None) -> None:
        self.node = node
        self.log = node.logger
        self.config = config
        self.core = PlannerCore(config, parameter_error, self.log)
        runtime = self.core.runtime_parameters()  # samples, horizon, noise: `ros2 param set` works on these
        node.declare_parameters({**parameters_of(config), **runtime})
        node.accept_parameter_changes(list(runtime), self.on_parameters, RUNTIME_CONSTRAINTS)
        self.pub_command = node.create_publisher(msg.Float64MultiArray, config.command_topic, COMMANDS)
        self.pub_info = node.create_publisher(msg.Float64MultiArray, config.planning_info_topic, COMMANDS)
        self.executor: AsyncCore | None = None
        self.clock_mismatches = 0
        if config.execution == "async" and not self.core.error:
            # With a bad configuration there is no control rate to keep: each state gets zero torque, as in lockstep.
            self.executor = AsyncCore(self.core, node.now_ns, self.log)
            self.pub_trajectory = node.create_publisher(msg.JointTrajectory, config.trajectory_topic, COMMANDS)
            self.pub_execution = node.create_publisher(msg.Float64MultiArray, config.execution_info_topic, COMMANDS)
            # The control rate on the node's clock: under use_sim_time the simulation's, as the bridge steps.
            node.create_timer(self.core.task.control_timestep, self.tick, ros_time=True)
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
        for warning in self.core.warnings:
            self.log.warning(warning)
        if self.executor is not None:
            self.executor.start()
            self.log.info(f"async execution: commands every {self.core.task.control_timestep} s of "
                          f"{'simulated' if config.use_sim_time else 'system'} time from the latest plan "
                          f"(zero torque past its end or {config.max_plan_age} s after its state); "
                          f"plans on {node.resolve(config.trajectory_topic)}")
        self.log.info(f"listening on {config.joint_states_topic}, commanding on {config.command_topic}")

    def on_parameters(self, changes: dict[str, Any]) -> str | None:
        """`ros2 param set` of the run-time planner parameters: checked as the parameter file is, used from
        the next plan on (`PlannerCore.retune`); returns why not, when refused."""
        try:
            config = self.core.retune(changes)
        except ConfigError as e:
            self.log.warning(f"parameter change {changes} refused: {e}")
            return str(e)
        if self.executor is not None:
            self.executor.retune(config)
        self.config = config
        self.log.info(f"parameters {changes} set: the next plan uses planner {config.planner} "
                      f"{dict(config.planner_params)}")
        return None

    def on_episode(self, message: msg.Int32) -> None:
        (self.executor or self.core).set_episode(message.data)
        self.log.info(f"episode {message.data}")

    def on_joint_state(self, message: msg.JointState) -> None:
        self.last_state = time.monotonic()
        if self.silent:
            self.silent = False
            self.log.info(f"joint states on {self.config.joint_states_topic} again")
        if self.executor is not None:
            self.take_joint_state(message)
            return
        answer = self.core.on_joint_state(message.header.stamp.to_ns(), message.name, message.position,
                                          message.velocity)
        if answer is None:
            if self.core.episode is None:
                self.log.info(f"waiting for the episode on {self.node.resolve(self.config.episode_topic)}",
                              throttle_s=5.0)
            return
        self.publish(answer)

    def take_joint_state(self, message: msg.JointState) -> None:
        """async: the state is kept for the planning worker; commands come from `tick`."""
        stamp_ns = message.header.stamp.to_ns()
        error = self.executor.on_joint_state(stamp_ns, message.name, message.position, message.velocity)
        if error:
            self.log.error(f"{error}; state ignored", throttle_s=1.0)
        if self.executor.episode is None:
            self.log.info(f"waiting for the episode on {self.node.resolve(self.config.episode_topic)}",
                          throttle_s=5.0)
        # Plans are stamped with their state's time and played by this node's clock: the two must agree.
        now_ns = self.node.now_ns()
        self.clock_mismatches = self.clock_mismatches + 1 if abs(now_ns - stamp_ns) * 1e-9 > \
            self.config.max_plan_age else 0
        if self.clock_mismatches >= CLOCK_MISMATCHES_TO_WARN:
            hint = ("is /clock published? (the bridge publishes it)" if self.config.use_sim_time else
                    "states stamped with simulation time need use_sim_time: true")
            self.log.warning(f"joint states are stamped {stamp_ns * 1e-9:.3f} s but this node's clock reads "
                             f"{now_ns * 1e-9:.3f} s: plans from them are too old to play; {hint}", throttle_s=5.0)

    def tick(self) -> None:
        """async: one control tick: the command for now from the latest plan."""
        now_ns = self.node.now_ns()
        tick = self.executor.tick(now_ns)
        self.pub_command.publish(msg.Float64MultiArray(data=tick.command.tolist()))
        stamp_s = tick.plan.stamp_ns * 1e-9 if tick.plan is not None else float("nan")
        self.pub_execution.publish(msg.vector([now_ns * 1e-9, stamp_s, execution_status_code(tick.status)],
                                              EXECUTION_INFO_LABEL))
        if tick.new_plan:  # after the command: a plan message takes ~2 ms to convert
            self.publish_plan(tick)

    def publish_plan(self, tick: Tick) -> None:
        plan = tick.plan
        self.pub_trajectory.publish(trajectory_message(plan, self.core.layout.joints,
                                                       self.core.layout.command(plan.torques)))
        self.pub_info.publish(msg.vector([plan.stamp_ns * 1e-9, plan.latency_s, plan.predicted_return],
                                         PLANNING_INFO_LABEL))

    def publish(self, answer: Answer) -> None:
        self.pub_command.publish(msg.Float64MultiArray(data=answer.command.tolist()))
        self.pub_info.publish(msg.vector([answer.stamp_ns * 1e-9, answer.latency_s, answer.predicted_return],
                                         PLANNING_INFO_LABEL))
        if answer.error:
            self.log.error(f"{answer.error}; sent zero torque", throttle_s=LOG_THROTTLE_S, throttle_key=answer.kind)

    def close(self) -> None:
        """Stops the planning worker (after its current plan), then releases the model."""
        if self.executor is not None:
            self.executor.stop()
        self.core.close()

    def watchdog(self) -> None:
        silence = time.monotonic() - self.last_state
        if silence > self.config.state_timeout and not self.silent:
            self.silent = True
            self.log.warning(f"no joint state on {self.config.joint_states_topic} for {silence:.1f} s")


def trajectory_message(plan: Trajectory, joints: Sequence[str], efforts: np.ndarray) -> msg.JointTrajectory:
    """A plan as a JointTrajectory: stamped with its state's time, one point per model step holding
    `efforts` (N, m) in `joints` order, `time_from_start` when that step begins."""
    return msg.JointTrajectory(
        header=msg.Header(stamp=msg.Time.from_ns(plan.stamp_ns)), joint_names=list(joints),
        points=[msg.JointTrajectoryPoint(effort=row.tolist(), time_from_start=msg.Duration.from_ns(i * plan.step_ns))
                for i, row in enumerate(efforts)])


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the planner until stopped (exit status 0). Bad parameters are reported, not fatal; a bad
    command line (a missing params file, `-p` without ':=', ROS_DOMAIN_ID out of range) is said in one
    line, exit status 2."""
    try:
        node = make_node(NODE_NAME, argv)
    except (ConfigError, RuntimeError) as e:
        return command_line_error(NODE_NAME, e)
    planner = None
    try:
        parameters, ignored = own_parameters(PlannerNodeConfig, node.parameters, node.wildcard_parameters, NODE_NAME)
        for warning in ignored:
            node.logger.warning(warning)
        config, error = salvage_config(PlannerNodeConfig, parameters)
        planner = PlannerNode(node, config, error and f"bad parameter {error}")
        try:
            node.spin()
        except KeyboardInterrupt:
            node.logger.info("interrupted")
        return 0
    finally:
        if planner is not None:
            planner.close()
        node.close()


if __name__ == "__main__":
    sys.exit(main())
