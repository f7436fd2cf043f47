"""The planner node without ROS: joint states in, torque commands out, every input checked.

`PlannerCore` wraps the same `Controller` the in-process evaluation uses, built
by the same `build_controller` with the same seeds (episode `i` plans with
`episode_rng(seed, i)`), so a closed loop over topics reproduces
`tdm_control.evaluation.episodes` exactly.

This is lockstep execution (the default); with `execution: async` the node plans
beside an executor instead (`tdm_control.nodes.async_core`), on this core's
task, model, joint reader and command layout.

It answers each joint state at most once, and which ones it takes is the stamp
policy of `tdm_control.nodes.stamps` (re-sends, stale states, bad stamps,
episodes; no stamp can block the loop). Episodes come from the bridge's latched
episode topic; without one, a stamp that goes back in time (the simulation was
reset) starts the next episode.

Every state taken gets an answer, zero torque with the reason when it cannot be
planned from:
* a configuration that cannot work (unknown task, a model that does not load, was
  altered after export or was made for another task, a bad planner parameter,
  planner sizes whose plans would not fit in memory): logged at start, the node
  keeps running;
* a joint state that is missing a joint, holds NaN or inf, or values no state of
  the robot has, or whose observation the model cannot take
  (`JointStateReader.observe`, the one check before planning);
* planning that raises (out of memory, a model error);
* a plan whose predicted return is impossible for rewards in [0, 1] (below 0 or
  above the horizon): the model is broken, and so is its plan. The actions held
  from that plan (action repeat) are zero torque too.
Each answer's `kind` names the class of problem, so the node throttles its log
by class, not by text.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Sequence

import numpy as np

from tdm_control import topics
from tdm_control.config import ConfigError, check, one_line
from tdm_control.controller import Controller, build_controller
from tdm_control.dynamics import make_dynamics
from tdm_control.exploration import exploration_config
from tdm_control.nodes.joints import BadInput, CommandLayout, JointStateReader
from tdm_control.nodes.stamps import StampPolicy, Verdict
from tdm_control.planning import OBJECTIVES, Planner, check_plan_memory, make_planner, planner_config
from tdm_control.tasks import make_task

PLANNING_INFO_LABEL = "stamp_s,planning_latency_s,predicted_return"
"""Layout of ~/planning_info: the answered state's stamp (s), planning time (s), the plan's predicted return
(NaN while an `exploration` walk, not a plan, is in play)."""
EXECUTIONS = ("lockstep", "async")
"""How commands are made: one plan per joint state, or plans beside an executor on a timer."""
RUNTIME_PLANNER_PARAMETERS = ("samples", "horizon", "noise_variance")
"""Planner parameters that may change while the node runs (ROS `planner_params.<name>`, `ros2 param set`),
where the planner has them: validated as the parameter file is, used from the next plan on."""
RETURN_SLACK = 0.05
"""Per model step: how far outside [0, 1] a predicted reward may be before the plan's return counts as
impossible. Decoded rewards are quantised (mu-law bins are about 0.02 wide near 1)."""


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
    exploration: dict = dataclasses.field(default_factory=dict)
    """Record exploratory data: tdm_control.exploration.ExplorationParameters keys (segment_steps,
    noise_variance, weights, mpc_shares, action_noises; `exploration.segment_steps` in ROS). Some segments
    then play Brownian walks instead of plans and plans carry noise, as `tdm-train collect` does. For
    data collection in simulation or on a robot that may be pushed; empty (the default): plain MPC."""
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
    joint_states_topic: str = topics.JOINT_STATES
    """sensor_msgs/JointState in (best-effort, newest only), joints mapped by name."""
    command_topic: str = topics.COMMANDS
    """std_msgs/Float64MultiArray out: torques (N·m; N for slide joints) in `joints` order."""
    episode_topic: str = topics.EPISODE
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
    kind: str = ""
    """The class of `error` (for log throttling): 'bad configuration', 'bad joint state', 'implausible
    joint state', 'bad observation', 'planning failed', 'impossible prediction'."""


def retuned_planner(planner: Planner, config: PlannerNodeConfig, action_size: int) -> Planner:
    """A planner of `config`'s planner settings that goes on where `planner` left off: the same model,
    objective and random generator (so the episode's draws continue), no warm start."""
    return make_planner(config.planner, planner.dynamics, planner.objective, action_size, planner.rng,
                        config.planner_params)


def impossible_return(predicted_return: float, horizon: int) -> str | None:
    """Why a plan's predicted return over `horizon` model steps cannot be right for rewards in [0, 1],
    or None. Every objective sums one reward per step, so the return lies in [0, horizon]."""
    slack = RETURN_SLACK * horizon
    if -slack <= predicted_return <= horizon + slack:
        return None
    return (f"the model predicted a return of {predicted_return:.6g} over {horizon} steps, impossible for rewards "
            f"in [0, 1] (it must lie in [0, {horizon}]): the model is broken (altered weights, a bad export?)")


class StdLog:
    """The `log` used when none is given: Python logging (throttling ignored)."""

    def __init__(self, name: str) -> None:
        self._log = logging.getLogger(name)

    def debug(self, message: str, throttle_s: float | None = None, throttle_key: str | None = None) -> None:
        self._log.debug(message)

    def info(self, message: str, throttle_s: float | None = None, throttle_key: str | None = None) -> None:
        self._log.info(message)

    def warning(self, message: str, throttle_s: float | None = None, throttle_key: str | None = None) -> None:
        self._log.warning(message)

    def error(self, message: str, throttle_s: float | None = None, throttle_key: str | None = None) -> None:
        self._log.error(message)


LOG_THROTTLE_S = 1.0
"""Seconds between two log lines of one kind (the rest are counted, and the count is logged)."""


def say(log, verdict: Verdict) -> None:
    """Logs what a stamp verdict has to say, throttled by its kind."""
    if verdict.level:
        getattr(log, verdict.level)(verdict.message, throttle_s=LOG_THROTTLE_S, throttle_key=verdict.kind)


class PlannerCore:
    """Plans one command per new joint state; never raises on bad input or a bad configuration.

    Args:
      config: the node's parameters.
      parameter_error: a problem found while reading the parameters; the core then
        answers with zero torque, saying so.
      log: has debug/info/warning/error(message, throttle_s=, throttle_key=) (the node's logger):
        what the stamp policy says about states it does not take.
    """

    def __init__(self, config: PlannerNodeConfig, parameter_error: str | None = None, log=None) -> None:
        self.config = config
        self.log = log or StdLog(__name__)
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
        self._stamps = StampPolicy(self.uses_episode_topic, config.joint_states_topic)
        self._rejected: str | None = None  # why the plan whose action is held was rejected
        self._retuned = False  # the planner parameters changed since the controller's planner was built
        if self.error is None:
            try:
                self._load()
            except Exception as e:  # noqa: BLE001 - any load failure (bad file, wrong task) is reported
                self.error = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
        if self.layout is None:
            self.zero_command = np.zeros(len(config.joints))
        else:
            self.zero_command = self.layout.zeros()

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the model found worth a warning at load (a model without a weights digest)."""
        return self.dynamics.warnings if self.dynamics is not None else ()

    def _load(self) -> None:
        c = self.config
        try:
            self.task = make_task(c.task)
        except ConfigError as e:
            raise ConfigError(f"task: {e}") from None
        self.layout = CommandLayout(self.task, c.joints)
        try:
            planner = planner_config(c.planner, c.planner_params)
        except ConfigError as e:
            raise ConfigError(f"planner/planner_params: {e}") from None
        exploration_config(c.exploration)  # a ConfigError names the key
        threads = {}
        if c.threads:
            threads = {"nthread" if c.model == "mujoco" else "threads": c.threads}
        try:
            self.dynamics = make_dynamics(c.model, self.task, action_repeat=c.action_repeat, **threads)
        except Exception as e:  # noqa: BLE001
            detail = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
            raise ConfigError(f"model: {c.model!r} cannot be used for task {c.task}: {detail}") from None
        self.reader = JointStateReader(self.task, self.dynamics.observation_limit)
        try:
            check_plan_memory(planner, self.dynamics, self.task.action_size)
        except ConfigError as e:
            raise ConfigError(f"planner_params: {e}") from None

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

        None means: the stamp policy did not take the state (a re-send of a state already
        answered, a stale state, a bad stamp; logged), or it arrived before the announcement
        of its episode (the bridge re-sends it).
        """
        if self.episode is None:
            return None
        if self.episode != self._controller_episode:
            self._start_episode()
        verdict = self._stamps.check(stamp_ns)
        say(self.log, verdict)
        if verdict.new_episode:
            self.episode += 1
            self._start_episode(keep_stamps=True)
        elif verdict.restart:
            self._start_episode(keep_stamps=True)
        if not verdict.take:
            return None
        answer = Answer(self.zero_command, stamp_ns, self.episode)
        if self.error is not None:
            answer.error, answer.kind = f"cannot plan, bad configuration: {self.error}", "bad configuration"
            return answer
        try:
            q, v, obs = self.reader.observe(names, positions, velocities)  # (J,), (J,), (n,)
        except BadInput as e:
            answer.error, answer.kind = str(e), e.kind
            return answer
        try:
            if self.controller is None:
                self.controller = build_controller(self.config, self.task, self.episode, self.dynamics)
                self.controller.reset()
            elif self._retuned:
                self.controller.planner = retuned_planner(self.controller.planner, self.config, self.task.action_size)
            self._retuned = False
            _, torque = self.controller.act(q, v, obs)  # (m,) N·m, actuator order
        except Exception as e:  # noqa: BLE001 - out of memory, a model error: this state still gets an answer
            answer.error, answer.kind = f"planning failed: {one_line(e)}", "planning failed"
            return answer
        plan = self.controller.last_plan
        if self.controller.planned:
            self._rejected = None if plan is None else impossible_return(plan.predicted_return, len(plan.plan))
        if self._rejected is not None:
            answer.error, answer.kind = self._rejected, "impossible prediction"
            return answer
        if not np.all(np.isfinite(torque)):
            answer.error, answer.kind = f"the planner produced non-finite torques {torque.tolist()}", "planning failed"
            return answer
        answer.command = self.layout.command(torque)
        answer.latency_s = self.controller.last_latency
        if plan is not None and not self.controller.exploring:  # a walk's action has no predicted return
            answer.predicted_return = plan.predicted_return
        return answer

    def _start_episode(self, keep_stamps: bool = False) -> None:
        """Plans the running episode afresh from its next state (a new controller: seeds, history)."""
        self._controller_episode = self.episode
        self.controller = None
        self._rejected = None
        if not keep_stamps:
            self._stamps.start_episode()

    def runtime_parameters(self) -> dict[str, Any]:
        """The planner parameters that may change while the node runs, with their values in use
        ({'planner_params.samples': 64, ...}); none when the node cannot plan."""
        if self.error is not None:
            return {}
        planner = planner_config(self.config.planner, self.config.planner_params)
        return {f"planner_params.{name}": getattr(planner, name) for name in RUNTIME_PLANNER_PARAMETERS
                if hasattr(planner, name)}

    def retune(self, changes: dict[str, Any]) -> PlannerNodeConfig:
        """Changes run-time planner parameters ({'planner_params.samples': 32, ...}); the next plan uses them.

        The new values go through the checks the parameter file goes through (the planner's typed
        config, and whether one plan of them fits in memory with the loaded model). Lockstep: the
        next state that is planned from (not one that holds an action) is planned with a planner of
        the new settings that goes on with the episode's generator and history; its warm start
        starts afresh.

        Returns:
          the node's new configuration.

        Raises:
          ConfigError saying why, when a name cannot change at run time or a value is refused; nothing changes.
        """
        allowed = self.runtime_parameters()
        params = dict(self.config.planner_params)
        for name, value in changes.items():
            if name not in allowed:
                raise ConfigError(f"{name} cannot change while the node runs" + (
                    f"; these can: {', '.join(allowed)}" if allowed else f" (it cannot plan: {self.error})"))
            params[name.split(".", 1)[1]] = value
        try:
            planner = planner_config(self.config.planner, params)
            check_plan_memory(planner, self.dynamics, self.task.action_size)
        except ConfigError as e:
            raise ConfigError(f"planner_params: {e}") from None
        typed = {key: getattr(planner, key) for key in params}  # as validated (an integer noise_variance: float)
        self.config = dataclasses.replace(self.config, planner_params=typed)
        self._retuned = True
        return self.config

    def describe(self) -> str:
        """One line for the start-up log."""
        c = self.config
        threads = c.threads or "default"
        notes = "".join(f" ({note})" for note in (self.dynamics.notes if self.dynamics is not None else ()))
        return (f"task {c.task}, model {c.model}{notes}, planner {c.planner} {dict(c.planner_params)}, "
                f"objective {c.objective}, seed {c.seed}, execution {c.execution}, model threads {threads}, "
                f"commands for joints {list(self.layout.joints) if self.layout else list(c.joints)}"
                f"{self._describe_exploration()}")

    def _describe_exploration(self) -> str:
        """', exploration: ...' when the node records exploratory data (its data policy); else ''."""
        try:
            exploration = exploration_config(self.config.exploration)
        except ConfigError:
            return ""  # the load error names it
        if exploration is None:
            return ""
        mixes = "; ".join(f"weight {m.weight:g}: MPC share {m.mpc_share:g}, noise {m.action_noise:g}"
                          for m in exploration.policy_mixes())
        return (f", exploration: segments of {exploration.segment_steps} decisions, Brownian variance "
                f"{exploration.noise_variance:g}, per-episode mixes [{mixes}]")

    def close(self) -> None:
        if self.dynamics is not None:
            self.dynamics.close()

