"""The simulation bridge node: a MuJoCo robot on ROS 2 topics.

    ros2 run tdm_control sim_bridge --ros-args --params-file config/cartpole.yaml
    python -m sim_bridge.bridge_node --ros-args --params-file config/cartpole.yaml   # no ROS 2 needed

Publishes /joint_states, /clock, /reward and ~/episode; applies the torques of
/effort_controller/commands; ~/reset starts the next episode. All logic is in
`sim_bridge.bridge_core`; this module converts messages and keeps time.
"""

from __future__ import annotations

import sys
import time
from typing import Sequence

import numpy as np

from sim_bridge.bridge_core import BridgeConfig, BridgeCore
from tdm_control.config import ConfigError
from tdm_control.files import write_json
from tdm_control.ros import messages as msg
from tdm_control.ros.bag import start_recording, stop_recording
from tdm_control.ros.params import config_from_parameters, own_parameters, parameters_of
from tdm_control.ros.transport import CLOCK, COMMANDS, LATCHED, SENSOR_DATA, Node, command_line_error, make_node

NODE_NAME = "sim_bridge"
WAITING_LOG_PERIOD_S = 5.0
"""lockstep: seconds between 'still waiting for a command' warnings."""
PUBLISHER_CHECK_PERIOD_S = 1.0
"""Seconds between counts of the command topic's publishers (more than one is warned about)."""


class BridgeNode:
    """Wires a `BridgeCore` to topics; runs until its episodes are done or it is stopped."""

    def __init__(self, node: Node, config: BridgeConfig) -> None:
        self.node = node
        self.log = node.logger
        self.config = config
        self.core = BridgeCore(config)
        node.declare_parameters(parameters_of(config))
        self.lockstep = config.mode == "lockstep"
        self.pub_state = node.create_publisher(msg.JointState, config.joint_states_topic, SENSOR_DATA)
        self.pub_clock = node.create_publisher(msg.Clock, config.clock_topic, CLOCK)
        self.pub_reward = node.create_publisher(msg.Float64, config.reward_topic, COMMANDS)
        self.pub_episode = node.create_publisher(msg.Int32, config.episode_topic, LATCHED)
        self.command_sub = node.create_subscription(msg.Float64MultiArray, config.command_topic, self.on_command,
                                                    COMMANDS)
        self.command_publishers = 0  # publishers on the command topic when last counted
        self.command_writer = None  # who wrote the last command (None: unknown)
        node.create_subscription(msg.Empty, config.reset_topic, self.on_reset, COMMANDS)
        self.awaiting_since: float | None = None  # lockstep: when the unanswered state was first sent
        self.last_sent = 0.0
        self.reset_requested = False
        self.answer_waits: list[float] = []  # lockstep: state first sent -> its command received (s)
        self.episode_walls: list[float] = []  # wall-clock seconds each finished episode took
        self.republished = 0
        self.bad_commands = 0
        self.timed_out = True
        self.started = time.monotonic()
        if self.lockstep:
            node.create_timer(config.republish_period / 2, self.republish)  # re-sends within 1.5 periods
        else:
            node.create_timer(self.core.task.control_timestep / config.speed_factor, self.tick)
        node.create_timer(PUBLISHER_CHECK_PERIOD_S, self.count_command_publishers)
        task = self.core.task
        self.log.info(f"{config.mode} simulation of {task.name}: commands on {config.command_topic} "
                      f"for joints {list(self.core.layout.joints)} (N·m, N for slide joints), "
                      f"{self.core.steps_per_episode} steps per episode, "
                      f"{config.episodes or 'unlimited'} episode(s), seed {config.seed}")
        self.start_episode()

    # ----------------------------------------------------------------- publishing
    def publish_state(self) -> None:
        s = self.core.state()
        self.pub_state.publish(msg.JointState(
            header=msg.Header(stamp=msg.Time.from_ns(s.stamp_ns)), name=list(s.names),
            position=s.positions.tolist(), velocity=s.velocities.tolist(), effort=s.efforts.tolist()))
        self.last_sent = time.monotonic()

    def publish_clock(self) -> None:
        self.pub_clock.publish(msg.Clock(clock=msg.Time.from_ns(self.core.stamp_ns)))

    def start_episode(self) -> None:
        episode = self.core.begin_episode()
        self.episode_started = time.monotonic()
        self.pub_episode.publish(msg.Int32(data=episode))
        self.log.info(f"episode {episode} started (simulator seed {self.config.seed + episode})")
        self.publish_clock()
        self.publish_state()
        self.awaiting_since = self.last_sent if self.lockstep else None

    def finish_episode(self, interrupted: bool = False) -> None:
        episode_return = self.core.end_episode()
        self.episode_walls.append(time.monotonic() - self.episode_started)
        how = f"interrupted by a reset after {self.core.steps_done} steps" if interrupted else \
            f"finished: {self.core.steps_done} steps"
        # repr keeps every digit, so logs can be compared with in-process evaluation exactly.
        self.log.info(f"episode {self.core.episode} {how}, return {episode_return:.3f} (exact {episode_return!r})")
        if self.core.all_done:
            self.log.info(f"all {self.config.episodes} episode(s) done: returns "
                          f"{', '.join(f'{r:.3f}' for r in self.core.returns)}")
            self.awaiting_since = None
            self.node.request_shutdown()
        else:
            self.start_episode()

    # ------------------------------------------------------------------ stepping
    def advance(self, torque: np.ndarray) -> None:
        """Steps once with `torque` (actuator order, N·m), publishes the outcome, and the next state."""
        reward = self.core.step(torque)
        self.pub_reward.publish(msg.Float64(data=reward))
        self.publish_clock()
        steps = self.core.steps_done
        period = self.config.progress_period
        if period and steps % period == 0:
            rate = steps / max(time.monotonic() - self.episode_started, 1e-9)
            self.log.info(f"episode {self.core.episode}: step {steps}/{self.core.steps_per_episode}, "
                          f"return so far {self.core.simulator.episode_return:.1f} ({rate:.0f} steps/s)")
        if self.core.episode_done:
            self.finish_episode()
            return
        self.publish_state()
        if self.lockstep:
            self.awaiting_since = self.last_sent

    def count_command_publishers(self) -> None:
        """Warns when more than one publisher drives the command topic (each command is applied as it comes)."""
        count = self.command_sub.publisher_count
        if count > 1 and count != self.command_publishers:
            self.log.warning(f"{count} publishers on {self.config.command_topic}: the bridge applies every command "
                             "as it comes, whoever sent it (one planner expected)",
                             throttle_s=PUBLISHER_CHECK_PERIOD_S, throttle_key="publishers")
        elif count <= 1 < self.command_publishers:
            self.log.info(f"{count} publisher on {self.config.command_topic} again")
        self.command_publishers = count

    def note_command_writer(self) -> None:
        """Warns when a command comes from another publisher than the last one (by the transport's writer id)."""
        writer = self.command_sub.last_publisher
        if writer is not None and self.command_writer is not None and writer != self.command_writer:
            self.count_command_publishers()
            if self.command_publishers > 1:
                self.log.warning(f"commands on {self.config.command_topic} alternate between publishers: each is "
                                 "applied as it comes", throttle_s=PUBLISHER_CHECK_PERIOD_S, throttle_key="writers")
            else:
                self.log.info(f"commands on {self.config.command_topic} come from a new publisher",
                              throttle_s=PUBLISHER_CHECK_PERIOD_S, throttle_key="new writer")
        self.command_writer = writer

    def on_command(self, message: msg.Float64MultiArray) -> None:
        now = time.monotonic()
        self.note_command_writer()
        if not self.lockstep:
            self.report_bad_command(self.core.receive(message.data, now))
            return
        if self.awaiting_since is None:
            self.log.warning("command received while no state awaits one (episodes over); ignored", throttle_s=5.0)
            return
        self.answer_waits.append(now - self.awaiting_since)
        self.awaiting_since = None
        if self.reset_requested:
            self.reset_requested = False
            self.log.info("reset: the command answering the interrupted episode's last state is discarded")
            self.finish_episode(interrupted=True)
            return
        torque, error = self.core.torque(message.data)
        self.report_bad_command(error)
        self.advance(torque)

    def report_bad_command(self, error: str | None) -> None:
        """Counts and logs (throttled by its kind) a command that was replaced by zero torque; None: a good one."""
        if error:
            self.bad_commands += 1
            self.log.error(f"bad command on {self.config.command_topic}: {error}; applying zero torque",
                           throttle_s=1.0, throttle_key=self.core.error_kind)

    def republish(self) -> None:
        """lockstep: re-sends the state that has no answer yet (the first one may precede discovery)."""
        if self.awaiting_since is None or time.monotonic() - self.last_sent < self.config.republish_period:
            return
        self.publish_state()
        self.republished += 1
        waited = time.monotonic() - self.awaiting_since
        if waited > WAITING_LOG_PERIOD_S:
            self.log.warning(f"no command on {self.config.command_topic} for {waited:.0f} s; "
                             "lockstep waits for the planner", throttle_s=WAITING_LOG_PERIOD_S, throttle_key="waiting")

    def tick(self) -> None:
        """realtime: one control step with the newest command, or zero torque if it is too old."""
        torque, timed_out = self.core.realtime_torque(time.monotonic())
        if timed_out and not self.timed_out:
            self.log.warning(f"no command on {self.config.command_topic} for more than "
                             f"{self.config.command_timeout} s: applying zero torque")
        elif not timed_out and self.timed_out:
            self.log.info(f"commands on {self.config.command_topic}: applying them")
        self.timed_out = timed_out
        self.advance(torque)

    def on_reset(self, _: msg.Empty) -> None:
        self.log.info(f"reset requested on {self.node.resolve(self.config.reset_topic)}")
        if self.lockstep and self.awaiting_since is not None:
            self.reset_requested = True  # applied when the command in flight arrives (it is discarded)
        elif not self.lockstep:
            self.finish_episode(interrupted=True)

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict:
        waits = np.asarray(self.answer_waits)
        return {
            "task": self.config.task, "mode": self.config.mode, "seed": self.config.seed,
            "steps_per_episode": self.core.steps_per_episode,
            "returns": self.core.returns,
            "episode_rewards": self.core.rewards,  # (episodes, steps): the reward of every control step
            "answer_wait_median_s": float(np.median(waits)) if waits.size else None,
            "answer_wait_p99_s": float(np.percentile(waits, 99)) if waits.size else None,
            "answered_states": int(waits.size),
            "answer_waits_s": waits.tolist(),
            "episode_wall_s": self.episode_walls,
            "republished_states": self.republished,
            "bad_commands": self.bad_commands,
            "wall_time_s": time.monotonic() - self.started,
        }


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the bridge; exit status 0 when its episodes are done or it is stopped, 2 on bad parameters
    or a bad command line (said in one line)."""
    try:
        node = make_node(NODE_NAME, argv)
    except (ConfigError, RuntimeError) as e:
        return command_line_error(NODE_NAME, e)
    recording = None
    try:
        try:
            parameters, ignored = own_parameters(BridgeConfig, node.parameters, node.wildcard_parameters, NODE_NAME)
            for warning in ignored:
                node.logger.warning(warning)
            config = config_from_parameters(BridgeConfig, parameters)
            if config.record:  # every topic the bridge uses, and the planner's, to a rosbag2
                recording = start_recording(node, config.record, config.record_storage, config.record_topics, COMMANDS)
            bridge = BridgeNode(recording or node, config)
        except ConfigError as e:
            node.logger.error(f"bad parameter: {e}")
            if recording is not None:
                recording.bag.discard()
            return 2
        try:
            node.spin()
        except KeyboardInterrupt:
            node.logger.info("interrupted")
        summary = bridge.summary()
        if recording is not None:
            summary["recording"] = stop_recording(recording, node.logger)
        video = bridge.core.close_video()
        if video:
            summary["video"] = video
            node.logger.info(f"wrote the video {video}")
        if config.result_path:
            write_json(config.result_path, summary)
            node.logger.info(f"wrote {config.result_path}")
        return 0
    finally:
        if recording is not None:
            recording.bag.close()
        node.close()


if __name__ == "__main__":
    sys.exit(main())
