"""The simulation bridge without ROS: episodes, command checks, and what to apply when.

The node (`sim_bridge.bridge_node`) only turns messages into calls on
`BridgeCore` and its results back into messages. Two ways to advance time:

* lockstep: the node publishes a state, the next command answers it, and only
  then does the simulation step. Deterministic whatever the planner's speed.
* realtime: a timer steps the simulation; each step applies the newest command
  unless it is older than `command_timeout`, in which case zero torque.

Episode `i` uses the simulator seed `seed + i`, as `tdm_control.evaluation.episodes` does,
so the same planner gets the same return in-process and over topics.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tdm_control import topics
from tdm_control.config import ConfigError, check
from tdm_control.nodes.joints import BadInput, CommandLayout
from tdm_control.tasks import make_task
from tdm_control.tasks.simulator import Simulator

MODES = ("lockstep", "realtime")


@dataclasses.dataclass(frozen=True)
class BridgeConfig:
    """The bridge node's parameters (ROS parameters of node `sim_bridge`)."""

    task: str = "cartpole_swingup"
    """Registered task whose MuJoCo model is simulated."""
    mode: str = "lockstep"
    """'lockstep' (step when the command for the published state arrives) or 'realtime' (step on a timer)."""
    seed: int = 0
    """Episode i starts from dm_control's initial state drawn with seed + i."""
    episodes: int = 0
    """Episodes to run before the node exits by itself; 0 runs until stopped."""
    steps: int = 0
    """Control steps per episode; 0 for the task's full episode (1000)."""
    joints: tuple[str, ...] = ()
    """Actuated joints in the order of the command array (ros2_control `joints`); empty: actuator order."""
    speed_factor: float = 1.0
    """realtime: simulated seconds per wall-clock second."""
    command_timeout: float = 0.1
    """realtime: a command older than this many wall-clock seconds is replaced by zero torque."""
    republish_period: float = 0.05
    """lockstep: wall-clock seconds between re-sends of a state that has no answer yet (discovery, lost packets)."""
    progress_period: int = 100
    """Steps between progress log lines; 0 for none."""
    joint_states_topic: str = topics.JOINT_STATES
    """sensor_msgs/JointState out: positions, velocities, efforts of every joint, stamped with sim time."""
    command_topic: str = topics.COMMANDS
    """std_msgs/Float64MultiArray in: torques (N·m; N for slide joints) in `joints` order."""
    clock_topic: str = topics.CLOCK
    """rosgraph_msgs/Clock out: simulation time, 0 at the start of each episode."""
    reward_topic: str = topics.REWARD
    """std_msgs/Float64 out: the task reward of each step."""
    episode_topic: str = "~/episode"
    """std_msgs/Int32 out (latched): the index of the running episode."""
    reset_topic: str = "~/reset"
    """std_msgs/Empty in: ends the running episode and starts the next."""
    result_path: str = ""
    """A JSON summary (returns, loop latency) is written here when the node stops; empty for none."""
    use_sim_time: bool = False
    """ROS convention; the bridge is the clock, its messages are always stamped with simulation time."""
    record: str = ""
    """A rosbag2 folder (new) that gets every message the bridge sends and receives, and `record_topics`;
    empty for none. `ros2 bag record` does the same from outside."""
    record_storage: str = "mcap"
    """The bag's storage: 'mcap' (ROS 2 Jazzy's default) or 'sqlite3' (the node checks it when it opens the bag,
    as it does `record_topics`: a node core knows no ROS)."""
    record_topics: tuple[str, ...] = (
        "/planner_node/planning_info:std_msgs/msg/Float64MultiArray",
        "/planner_node/planned_trajectory:trajectory_msgs/msg/JointTrajectory",
        "/planner_node/execution_info:std_msgs/msg/Float64MultiArray",
    )
    """Other nodes' topics recorded too, as 'TOPIC:TYPE' (the planner's diagnostics and plans)."""
    video: str = ""
    """Film every episode offscreen into this .mp4 (or .gif) file, each step's reward shown
    (tdm_control.evaluation.video: 320x240, 25 frames per second of simulated time); empty for none."""

    def __post_init__(self) -> None:
        check(self.mode in MODES, "mode", f"must be one of {', '.join(MODES)}, got {self.mode!r}")
        check(self.episodes >= 0, "episodes", f"must be >= 0, got {self.episodes}")
        check(self.steps >= 0, "steps", f"must be >= 0, got {self.steps}")
        check(self.speed_factor > 0, "speed_factor", f"must be > 0, got {self.speed_factor}")
        check(self.command_timeout > 0, "command_timeout", f"must be > 0 s, got {self.command_timeout}")
        check(self.republish_period > 0, "republish_period", f"must be > 0 s, got {self.republish_period}")
        check(self.progress_period >= 0, "progress_period", f"must be >= 0, got {self.progress_period}")


@dataclasses.dataclass
class JointSample:
    """One joint state of the simulated robot, in the task's joint order."""

    stamp_ns: int
    """Simulation time since the episode began (ns)."""
    names: tuple[str, ...]
    positions: np.ndarray
    """(J,) m or rad."""
    velocities: np.ndarray
    """(J,) m/s or rad/s."""
    efforts: np.ndarray
    """(J,) N or N·m the actuators applied during the last step."""


class BridgeCore:
    """Runs episodes of a task's simulation and decides which torque each step applies.

    Raises ConfigError (naming the parameter) for an unknown task, a bad `joints`
    list or too many `steps`.
    """

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.task = make_task(config.task)
        self.layout = CommandLayout(self.task, config.joints)
        check(config.steps <= self.task.episode_steps, "steps",
              f"must be <= {self.task.episode_steps} ({config.task}'s episode length), got {config.steps}")
        self.steps_per_episode = config.steps or self.task.episode_steps
        self.step_ns = round(self.task.control_timestep * 1e9)
        """Simulation time of one control step (ns)."""
        self.episode = -1
        self.simulator: Simulator | None = None
        self.returns: list[float] = []
        """Returns of the finished (or interrupted) episodes, in order."""
        self.rewards: list[list[float]] = []
        """The reward of every control step of each episode begun, in order (episodes, steps)."""
        self._command = self.layout.zeros()  # realtime: newest command, actuator order
        self._command_time = -np.inf  # realtime: when it arrived (s, monotonic)
        self.error_kind = ""
        """The kind of the last bad command ('misshapen command', 'non-finite command')."""
        self.video = None
        if config.video:
            from tdm_control.evaluation.video import EpisodeVideo, RenderError, VideoConfig

            try:
                self.video = EpisodeVideo(VideoConfig(path=config.video), self.task.model, self.task.control_timestep)
            except RenderError as e:
                raise ConfigError(f"video: {e}") from None

    # ---------------------------------------------------------------- episodes
    def begin_episode(self) -> int:
        """Starts the next episode from a fresh initial state; returns its index."""
        self.episode += 1
        self.simulator = Simulator(self.task, seed=self.config.seed + self.episode)
        self.simulator.reset()
        self.rewards.append([])
        if self.video is not None:
            self.video.begin_episode(self.simulator.physics.data.ptr)
        return self.episode

    def end_episode(self) -> float:
        """Records the running episode's return (also when interrupted by a reset) and returns it."""
        self.returns.append(self.simulator.episode_return)
        return self.returns[-1]

    @property
    def steps_done(self) -> int:
        return self.simulator.step_count

    @property
    def episode_done(self) -> bool:
        return self.simulator.step_count >= self.steps_per_episode

    @property
    def all_done(self) -> bool:
        """True once `episodes` episodes have finished (never when `episodes` is 0)."""
        return self.config.episodes > 0 and len(self.returns) >= self.config.episodes

    # ------------------------------------------------------------- stepping
    @property
    def stamp_ns(self) -> int:
        """Simulation time of the current state since the episode began (ns), exact."""
        return self.simulator.step_count * self.step_ns

    def state(self) -> JointSample:
        positions, velocities, efforts = self.simulator.joint_state()
        return JointSample(self.stamp_ns, self.task.joint_names, positions, velocities, efforts)

    def step(self, torque: np.ndarray) -> float:
        """Applies torques (m,) in actuator order (N·m) for one control step; returns the task reward."""
        reward = self.simulator.step(torque)
        self.rewards[-1].append(round(float(reward), 4))  # 1e-4: keeps result files small
        if self.video is not None:
            self.video.step(self.simulator.physics.data.ptr, self.simulator.step_count, reward)
        return reward

    def close_video(self) -> str | None:
        """Writes the video of the episodes run (if filming); returns its path."""
        video, self.video = self.video, None
        return video.close() if video is not None and video.frames else None

    def torque(self, command) -> tuple[np.ndarray, str | None]:
        """The torques (m,) a received command asks for, or zero torque and what was wrong with it
        (its kind, for log throttling, in `error_kind`)."""
        try:
            return self.layout.torque(command), None
        except BadInput as e:
            self.error_kind = e.kind
            return np.zeros(self.layout.size), str(e)

    # ------------------------------------------------------------- realtime
    def receive(self, command, now_s: float) -> str | None:
        """realtime: keeps a received command (zero torque if it is bad) with its arrival time (s, monotonic).

        Returns what was wrong with it, or None.
        """
        self._command, error = self.torque(command)
        self._command_time = now_s
        return error

    def realtime_torque(self, now_s: float) -> tuple[np.ndarray, bool]:
        """realtime: the torques (m,) to apply at `now_s`, and whether the newest command is too old."""
        if now_s - self._command_time > self.config.command_timeout:
            return np.zeros(self.layout.size), True
        return self._command, False
