"""The planner node without ROS: joint states in, torque commands out, every input checked.

`PlannerCore` wraps the same `Controller` the in-process evaluation uses, built
by the same `build_controller` with the same seeds (episode `i` plans with
`episode_rng(seed, i)`), so a closed loop over topics reproduces
`tdm_control.evaluation.episodes` exactly.

This is lockstep execution (the default); with `execution: async` the node plans
beside an executor instead (`tdm_control.nodes.async_core`), on this core's
task, model, joint reader and command layout.

It answers each joint state at most once: a state whose stamp is not newer than
the last one answered in the running episode is a re-send (lockstep bridges
re-send until answered) and gets no second command. Episodes come from the
bridge's latched episode topic; without one, a stamp that goes back in time
(the simulation was reset) starts the next episode.

A configuration that cannot work (unknown task, a model that does not load or
was made for another task, a bad planner parameter) does not stop the node: it
logs what was wrong and answers every state with zero torque. So does a joint
state that is missing a joint or holds NaN or inf.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from tdm_control.config import ConfigError, check
from tdm_control.controller import Controller, build_controller
from tdm_control.dynamics import make_dynamics
from tdm_control.nodes.joints import BadInput, CommandLayout, JointStateReader
from tdm_control.planning import OBJECTIVES, planner_config
from tdm_control.tasks import make_task

PLANNING_INFO_LABEL = "stamp_s,planning_latency_s,predicted_return"
"""Layout of ~/planning_info: the answered state's stamp (s), planning time (s), the plan's predicted return."""
EXECUTIONS = ("lockstep", "async")
"""How commands are made: one plan per joint state, or plans beside an executor on a timer."""


@dataclasses.dataclass(frozen=True)
class PlannerNodeConfig:
    """The planner node's parameters (ROS parameters of node `planner_node`)."""

    task: str = "cartpole_swingup"
    """Registered task: the joints read, the observation built, the reward planned for."""
    model: str = "mujoco"
    """Dynamics model: 'mujoco' (ground truth), the path of an exported .onnx model, or several
    such paths joined by '+' (an ensemble planning on their mean prediction)."""
    planner: str = "warm_start"
    """Registered planner name."""
    planner_params: dict = dataclasses.field(default_factory=dict)
    """The planner's config: samples (K), horizon (N), noise_variance, ... (`planner_params.samples` in ROS)."""
    objective: str = "observation"
    """'observation': task reward of predicted observations; 'predicted': the model's reward predictions."""
    seed: int = 0
    """Episode i plans with numpy generator default_rng([seed, i]), as the in-process evaluation."""
    action_repeat: int = 0
    """Control steps each planned action is held (answered without planning); 0: the model's own."""
    execution: str = "lockstep"
    """'lockstep': each joint state answered once with a fresh plan (deterministic: evaluation);
    'async': a planning worker replans from the newest state while an executor commands on a timer
    at the control rate from the latest plan (realtime; tdm_control/nodes/async_core.py)."""
    max_plan_age: float = 1.0
    """async: seconds (node clock) after its state a plan may still be played; with none younger, zero torque."""
    threads: int = 0
    """Threads a plan may use (MuJoCo rollout threads; a TDM's candidate blocks, one single-threaded ONNX
    Runtime call each); 0: every core, in both executions (see async_core for the measured trade-off);
    1 leaves a core to the executor and the bridge."""
    joints: tuple[str, ...] = ()
    """Actuated joints in the order of the command array (ros2_control `joints`); empty: actuator order."""
    joint_states_topic: str = "/joint_states"
    """sensor_msgs/JointState in (best-effort, newest only), joints mapped by name."""
    command_topic: str = "/effort_controller/commands"
    """std_msgs/Float64MultiArray out: torques (N·m; N for slide joints) in `joints` order."""
    episode_topic: str = "/sim_bridge/episode"
    """std_msgs/Int32 in (latched): the running episode; empty: a stamp going back starts an episode."""
    planning_info_topic: str = "~/planning_info"
    """std_msgs/Float64MultiArray out, one per command (async: per new plan): [state stamp (s),
    planning latency (s), predicted return]."""
    trajectory_topic: str = "~/planned_trajectory"
    """async: trajectory_msgs/JointTrajectory out when a new plan starts being played: efforts per model step."""
    execution_info_topic: str = "~/execution_info"
    """async: std_msgs/Float64MultiArray out, one per tick: [time (s), stamp of the plan played (s; NaN
    for none), status (0 ok, 1 expired, 2 no plan, 3 error)]."""
    state_timeout: float = 2.0
    """Wall-clock seconds without a joint state after which the node warns (once per silence)."""
    use_sim_time: bool = False
    """Use /clock as the node's clock."""

    def __post_init__(self) -> None:
        check(self.objective in OBJECTIVES, "objective",
              f"must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        check(self.state_timeout > 0, "state_timeout", f"must be > 0 s, got {self.state_timeout}")
        check(self.execution in EXECUTIONS, "execution",
              f"must be one of {', '.join(EXECUTIONS)}, got {self.execution!r}")
        check(self.max_plan_age > 0, "max_plan_age", f"must be > 0 s, got {self.max_plan_age}")
        check(self.threads >= 0, "threads", f"must be >= 0 (0: the default), got {self.threads}")


@dataclasses.dataclass
class Answer:
    """What the node publishes for one joint state."""

    command: np.ndarray
    """(m,) torques in `joints` order, N·m (N for slide joints); zeros when `error`."""
    stamp_ns: int
    """Stamp of the joint state answered."""
    episode: int
    latency_s: float = 0.0
    """Seconds spent planning."""
    predicted_return: float = float("nan")
    """The chosen plan's objective value over the horizon; NaN when nothing was planned."""
    error: str | None = None
    """Why zero torque was sent instead of a plan."""


class PlannerCore:
    """Plans one command per new joint state; never raises on bad input or a bad configuration.

    Args:
      config: the node's parameters.
      parameter_error: a problem found while reading the parameters; the core then
        answers with zero torque, saying so.
    """

    def __init__(self, config: PlannerNodeConfig, parameter_error: str | None = None) -> None:
        self.config = config
        self.error = parameter_error
        """Why the node cannot plan (it sends zero torque), or None."""
        self.task = None
        self.layout: CommandLayout | None = None
        self.reader: JointStateReader | None = None
        self.dynamics = None
        self.controller: Controller | None = None
        self.uses_episode_topic = bool(config.episode_topic)
        self.episode: int | None = None if self.uses_episode_topic else 0
        """The running episode, as last announced (None: not heard of yet)."""
        self._controller_episode: int | None = None
        self._last_stamp: int | None = None
        if self.error is None:
            try:
                self._load()
            except Exception as e:  # noqa: BLE001 - any load failure (bad file, wrong task) is reported
                self.error = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
        if self.layout is None:
            self.zero_command = np.zeros(len(config.joints))
        else:
            self.zero_command = self.layout.zeros()

    def _load(self) -> None:
        c = self.config
        try:
            self.task = make_task(c.task)
        except ConfigError as e:
            raise ConfigError(f"task: {e}") from None
        self.layout = CommandLayout(self.task, c.joints)
        self.reader = JointStateReader(self.task)
        try:
            planner_config(c.planner, c.planner_params)
        except ConfigError as e:
            raise ConfigError(f"planner/planner_params: {e}") from None
        threads = {}
        if c.threads:
            threads = {"nthread" if c.model == "mujoco" else "threads": c.threads}
        try:
            self.dynamics = make_dynamics(c.model, self.task, action_repeat=c.action_repeat, **threads)
        except Exception as e:  # noqa: BLE001
            detail = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
            raise ConfigError(f"model: {c.model!r} cannot be used for task {c.task}: {detail}") from None

    def set_episode(self, episode: int) -> None:
        """The bridge announced episode `episode` (from the latched episode topic).

        Every announcement starts an episode, also one with the index of the running
        one: a restarted bridge announces episode 0 again.
        """
        self.episode = int(episode)
        self._controller_episode = None

    def on_joint_state(self, stamp_ns: int, names: Sequence[str], positions: Sequence[float],
                       velocities: Sequence[float]) -> Answer | None:
        """The command for one joint state, or None when this state gets no answer.

        None means: a re-send of a state already answered, or a state that arrived
        before the announcement of its episode (the bridge re-sends it).
        """
        if self.episode is None:
            return None
        if not self.uses_episode_topic and self._last_stamp is not None and stamp_ns < self._last_stamp:
            self.episode += 1  # time went back: the simulation was reset
        if self.episode != self._controller_episode:
            self._controller_episode = self.episode
            self._last_stamp = None
            self.controller = None
        if self._last_stamp is not None and stamp_ns <= self._last_stamp:
            return None
        self._last_stamp = stamp_ns
        answer = Answer(self.zero_command, stamp_ns, self.episode)
        if self.error is not None:
            answer.error = f"cannot plan, bad configuration: {self.error}"
            return answer
        try:
            q, v = self.reader.read(names, positions, velocities)  # (J,), (J,)
        except BadInput as e:
            answer.error = str(e)
            return answer
        if self.controller is None:
            self.controller = build_controller(self.config, self.task, self.episode, self.dynamics)
            self.controller.reset()
        _, torque = self.controller.act(q, v)  # (m,) N·m, actuator order
        if not np.all(np.isfinite(torque)):
            answer.error = f"the planner produced non-finite torques {torque.tolist()}"
            return answer
        answer.command = self.layout.command(torque)
        answer.latency_s = self.controller.last_latency
        plan = self.controller.last_plan
        answer.predicted_return = plan.predicted_return if plan is not None else float("nan")
        return answer

    def describe(self) -> str:
        """One line for the start-up log."""
        c = self.config
        threads = c.threads or "default"
        return (f"task {c.task}, model {c.model}, planner {c.planner} {dict(c.planner_params)}, "
                f"objective {c.objective}, seed {c.seed}, execution {c.execution}, model threads {threads}, "
                f"commands for joints {list(self.layout.joints) if self.layout else list(c.joints)}")

    def close(self) -> None:
        if self.dynamics is not None:
            self.dynamics.close()

