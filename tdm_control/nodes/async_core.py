"""Planning beside control, without ROS: an executor that commands by time, and a planning worker.

The split MuJoCo MPC uses (`mjpc/agent.cc`): a planning worker (a thread)
replans continuously from the newest joint state, and an executor, called by
the node's timer at the control rate, commands on every tick the action that
the latest plan (`Trajectory`) holds for that time. A plan can take many
control steps; the robot never waits for it.

Time. Every time is the node's clock in ns (`clock()`): under use_sim_time the
simulation's /clock, which is also what joint states are stamped with; else
system time, as a robot stamps its joint states. A plan is stamped with the time
of the state it was planned from.

Model steps. Plans start on the episode's model-step grid: every `action_repeat`
control steps from the episode's first state (a state within half a control step
of a grid point counts as on it). So the shift between two plans is a whole
number of model steps, and the history below has the layout the model was
trained on.

History (what a TDM conditions on). It records what was executed, not what was
planned: one entry per model step, holding the observation at the step's start,
the reward on arriving there (the task reward of that observation after the
previous step's action; 0 for the episode's first step), and the action the
executor commanded at the step's first tick (zero when it sent zero torque). A
step enters the history when the next one starts; a plan made from step k sees
steps before k, as in lockstep.

Latency. The worker measures each plan's latency on the node clock and expects
the next plan to be in use at start + the largest of the last `LATENCY_WINDOW`
latencies. Every model step that begins by then (at least the state's own step,
whose action was commanded when the state arrived) is fixed: the new plan copies
what the executor plays meanwhile (the current plan, or zero where it has none
or it expires), every candidate starts with those actions, and so swapping the
plan in changes no action already started and the plan is scored on what will
really happen. The rest is warm-started from the current plan shifted by the
time that actually passed (`trajectory.shift`). A plan slower than expected can
change the action within a model step; the history keeps the step's first.

Threads. ONNX Runtime and MuJoCo release the GIL while they compute, so the
executor's tick (on the node's spin thread) runs while a plan is computed; the
CPU is what is short. Measured with benchmarks/async_loop.py on the 2-core
development machine (cartpole, one quiet 1000-step episode per setting): ticks
on time 99.9% with 1 model thread, 99.8% with 2, for both models; the p99 delay
from state to command is 1.3 ms against 6.7 ms with the ground truth and 3.5 ms
against 9.0 ms with the shipped TDM. But the plan's latency decides the return:
`tdm-control launch config/cartpole.yaml --mode realtime --model mujoco --set
planner_node.action_repeat=2` returned 747.2 over 4 episodes with 1 thread and
843.4 with 2 (EVALUATION.md). So the plan gets every core by default
(`PlannerNodeConfig.threads` 0); `threads: 1` leaves a core to the executor
where its margin matters more.

Errors never stop the executor: a plan that fails (an exception, non-finite
actions, a predicted return impossible for rewards in [0, 1]) is logged,
throttled, and the current plan is played until it expires; with no valid plan
the executor sends zero torque. Joint states go through the lockstep core's
checks: the stamp policy (`tdm_control.nodes.stamps`; a state that drops a bad
stamp starts the episode's plan and history afresh) and `JointStateReader.observe`.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

from tdm_control.controller import build_controller
from tdm_control.history import History
from tdm_control.nodes.joints import BadInput
from tdm_control.nodes.planner_core import (
    LOG_THROTTLE_S,
    PlannerCore,
    PlannerNodeConfig,
    StdLog,
    impossible_return,
    one_line,
    retuned_planner,
    say,
)
from tdm_control.nodes.stamps import StampPolicy
from tdm_control.nodes.trajectory import Trajectory, fit_horizon, shift

STATUSES = ("ok", "expired", "no plan", "error")
"""What a tick did: played a plan; zero torque because the plan ran out or is older than max_plan_age;
zero torque because there is no plan yet; zero torque because planning failed."""
LATENCY_WINDOW = 5
"""Recent plan latencies whose largest is the expected latency of the next plan."""


@dataclasses.dataclass
class Tick:
    """What the executor commands at one time."""

    command: np.ndarray
    """(m,) torques in `joints` order (N·m; N for slide joints); zeros unless status is 'ok'."""
    status: str
    """One of STATUSES."""
    message: str = ""
    """Why zero torque was sent ('' when 'ok')."""
    plan: Trajectory | None = None
    """The plan played ('ok'), or None."""
    new_plan: bool = False
    """Whether this tick is the first to play `plan` (the node then publishes it)."""


@dataclasses.dataclass
class _Step:
    """One model step of the running episode, as it was executed."""

    index: int
    """Model steps since the episode's first state."""
    stamp_ns: int
    obs: np.ndarray
    """(n,) observation at the step's start."""
    reward: float
    """Reward on arriving at `obs`."""
    action: np.ndarray | None = None
    """(m,) the action commanded at the step's first tick; None until that tick."""


class AsyncCore:
    """The executor and the planning worker of one planner node, for a `PlannerCore` that loaded fine.

    Args:
      core: the loaded task, model, joint reader and command layout (`core.error` must be None).
      clock: the node's clock, ns (ROS time: /clock under use_sim_time).
      log: has debug/info/warning/error(message, throttle_s=, throttle_key=) (the node's logger).
      controller_factory: builds an episode's controller, as `build_controller` (tests pass a slow one).

    The node calls `set_episode`, `on_joint_state` and `tick` from its spin thread; the worker
    runs `run_once` on its own thread (`start`/`stop`), or a test calls it directly.
    """

    def __init__(self, core: PlannerCore, clock: Callable[[], int], log: Any = None,
                 controller_factory: Callable = build_controller) -> None:
        if core.error is not None:
            raise ValueError(f"async execution needs a planner that loaded: {core.error}")
        self.core = core
        self.config = core.config
        self.task = core.task
        self.clock = clock
        self.log = log or StdLog(__name__)
        self.controller_factory = controller_factory
        self.control_ns = round(self.task.control_timestep * 1e9)
        self.step_ns = self.control_ns * core.dynamics.action_repeat
        """One model step (ns): the action repeat x the control timestep."""
        self.max_age_ns = round(self.config.max_plan_age * 1e9)
        self.zero_action = np.zeros(self.task.action_size)
        self._lock = threading.Condition()  # guards the state below; the worker waits on it for new states
        # Episode and history: written on the spin thread, read by the worker, under the lock.
        self.episode: int | None = None if core.uses_episode_topic else 0
        self._generation = 0  # +1 per episode: a plan finished for an earlier one is dropped
        self._stamps = StampPolicy(core.uses_episode_topic, self.config.joint_states_topic)
        self._anchor: int | None = None  # stamp of the episode's first state (ns)
        self._history = History(core.dynamics.history_steps)
        self._pending: _Step | None = None  # the newest model step; its action is still being played
        self._last_action = self.zero_action  # what the executor commanded last (m,)
        self._plan: Trajectory | None = None
        self._announced: Trajectory | None = None  # the plan the executor last reported as new
        self.planning_error: str | None = None
        """Why the last plan failed (None after a success)."""
        # Worker only.
        self._planned: tuple[int, int] | None = None  # (generation, stamp) of the state planned from last
        self._controller = None
        self._controller_generation: int | None = None
        self._latencies: collections.deque = collections.deque(maxlen=LATENCY_WINDOW)  # ns
        self._thread: threading.Thread | None = None
        self._stop = False
        self._retune: PlannerNodeConfig | None = None  # new planner parameters for the worker's next plan

    @property
    def plan(self) -> Trajectory | None:
        """The latest plan: the one the executor plays (None at an episode's start)."""
        with self._lock:
            return self._plan

    # ------------------------------------------------------------------ episodes and states (spin thread)
    def set_episode(self, episode: int) -> None:
        """The bridge announced `episode`: forget the plan, the history and the time grid."""
        with self._lock:
            self._start_episode(int(episode))

    def _start_episode(self, episode: int, keep_stamps: bool = False) -> None:
        self.episode = episode
        self._generation += 1
        self._anchor = self._pending = self._plan = None
        if not keep_stamps:
            self._stamps.start_episode()
        self._history.clear()
        self._last_action = self.zero_action
        self.planning_error = None

    def on_joint_state(self, stamp_ns: int, names: Sequence[str], positions: Sequence[float],
                       velocities: Sequence[float]) -> str | None:
        """Takes a joint state; returns what was wrong with it (it is then ignored), else None.

        Which states are taken is the stamp policy's (`tdm_control.nodes.stamps`: what it
        says is logged here); without an episode topic, a stamp that goes back starts the
        next episode. A state that begins a model step becomes the one the worker plans from next.
        """
        try:
            _, _, obs = self.core.reader.observe(names, positions, velocities)  # (n,)
        except BadInput as e:
            return str(e)
        with self._lock:
            if self.episode is None:
                return None  # the episode is not announced yet
            verdict = self._stamps.check(stamp_ns)
            if verdict.new_episode:
                self._start_episode(self.episode + 1, keep_stamps=True)  # time went back: the simulation was reset
            elif verdict.restart:
                self._start_episode(self.episode, keep_stamps=True)
            if verdict.take:
                self._take(stamp_ns, obs)
        say(self.log, verdict)
        return None

    def _take(self, stamp_ns: int, obs: np.ndarray) -> None:
        """Records a state the stamp policy took (under the lock): a state that begins a model step
        becomes the one the worker plans from next; the step before it enters the history."""
        if self._anchor is None:
            self._anchor = stamp_ns
        index = (stamp_ns - self._anchor + self.control_ns // 2) // self.step_ns
        previous = self._pending
        if previous is not None and index <= previous.index:
            return  # within the model step already recorded
        reward = 0.0
        if previous is not None:
            if previous.action is None:  # no tick since it began: the last command still holds
                previous.action = self._last_action
            self._history.append(previous.obs, previous.reward, previous.action)
            reward = float(self.task.reward(obs, previous.action))
        self._pending = _Step(index, stamp_ns, obs, reward)
        self._lock.notify_all()

    # ------------------------------------------------------------------ executor (spin thread)
    def _playable(self, plan: Trajectory | None, t_ns: int) -> tuple[int | None, str, str]:
        """(index of the action `plan` holds at `t_ns`, or None; the status; why zero torque, or '').

        A failing planner is named as the reason whenever there is nothing to play.
        """
        if plan is None:
            reason = "no plan yet"
        else:
            index = plan.index_at(t_ns)
            if index is not None and t_ns - plan.stamp_ns <= self.max_age_ns:
                return index, "ok", ""
            if index is None:
                reason = (f"the plan from {plan.stamp_ns * 1e-9:.3f} s ran out at {plan.end_ns * 1e-9:.3f} s "
                          f"(now {t_ns * 1e-9:.3f} s)")
            else:
                reason = f"the newest plan is {plan.age_s(t_ns):.3f} s old (max_plan_age {self.config.max_plan_age} s)"
        if self.planning_error:
            return None, "error", f"{reason}; planning failed: {self.planning_error}"
        return None, ("no plan" if plan is None else "expired"), reason

    def tick(self, now_ns: int) -> Tick:
        """The command for time `now_ns` (the timer's tick), from the latest plan; zero torque without one."""
        with self._lock:
            plan = self._plan
            index, status, message = self._playable(plan, now_ns)
            if index is None:
                action, tick = self.zero_action, Tick(self.core.layout.zeros(), status, message)
            else:
                action = plan.actions[index]
                tick = Tick(self.core.layout.command(plan.torques[index]), "ok", plan=plan,
                            new_plan=plan is not self._announced)
                self._announced = plan
            self._last_action = action
            step = self._pending
            if step is not None and step.action is None and now_ns >= step.stamp_ns:
                step.action = action  # the action of the model step that began at step.stamp_ns
        if status == "expired":
            self.log.warning(f"{message}: sending zero torque", throttle_s=LOG_THROTTLE_S, throttle_key="expired")
        elif status == "error":
            self.log.error(f"{message}: sending zero torque", throttle_s=LOG_THROTTLE_S, throttle_key="error")
        return tick

    # ------------------------------------------------------------------ planning worker
    def run_once(self) -> Trajectory | None:
        """Plans once from the newest model step not planned from yet; returns the new plan, or None.

        None: nothing new to plan from, the plan failed (logged, `planning_error` set), or the
        episode changed while planning (the plan is dropped).
        """
        with self._lock:
            state = self._pending
            if state is None or (self._generation, state.stamp_ns) == self._planned:
                return None
            generation, episode = self._generation, self.episode
            self._planned = (generation, state.stamp_ns)
            previous = self._plan
            history = History(self._history.capacity)
            for obs, reward, action in zip(*self._history.arrays()):
                history.append(obs, reward, action)
            history.current_reward = state.reward
            retune, self._retune = self._retune, None
        try:
            if retune is not None:
                self.config = retune
            if self._controller_generation != generation:
                self._controller = self.controller_factory(self.config, self.task, episode, self.core.dynamics)
                self._controller.reset()
                self._controller_generation = generation
            elif retune is not None:
                self._controller.planner = retuned_planner(self._controller.planner, retune, self.task.action_size)
            planner = self._controller.planner
            start_ns, start = self.clock(), time.perf_counter()
            ready_ns = start_ns + max(self._latencies, default=0)  # when the new plan is expected in use
            horizon = planner.config.horizon
            fixed = self._expected_actions(previous, state.stamp_ns, ready_ns, horizon)  # (F, m)
            guess = None if previous is None else fit_horizon(
                shift(previous, (state.stamp_ns - previous.stamp_ns) * 1e-9), horizon)
            planner.continue_from(guess, fixed)
            planner.plan(state.obs, history)
            actions = np.clip(planner.sequence(), -1.0, 1.0)  # (N, m)
            actions[:len(fixed)] = fixed
            if not np.all(np.isfinite(actions)):
                raise ValueError(f"the planner produced non-finite actions {actions[~np.isfinite(actions)][:4]}")
            impossible = impossible_return(planner.last.predicted_return, horizon)
            if impossible:
                raise ValueError(impossible)
            self._latencies.append(self.clock() - start_ns)
            plan = Trajectory(actions, self.task.action_to_torque(actions), state.stamp_ns, self.step_ns,
                              planner.last.predicted_return, time.perf_counter() - start)
        except Exception as e:  # noqa: BLE001 - any planning failure is reported; the executor goes on
            error = one_line(e)
            with self._lock:
                if generation == self._generation:
                    self.planning_error = error
            self.log.error(f"planning from the state at {state.stamp_ns * 1e-9:.3f} s failed: {error}",
                           throttle_s=LOG_THROTTLE_S, throttle_key="planning failed")
            return None
        with self._lock:
            if generation != self._generation:
                return None
            self._plan, self.planning_error = plan, None
        return plan

    def _expected_actions(self, plan: Trajectory | None, stamp_ns: int, ready_ns: int, horizon: int) -> np.ndarray:
        """What the executor plays from `stamp_ns` on, one action per model step that begins by `ready_ns`
        (at least the first): (F, m), F <= horizon; zero where `plan` has nothing playable."""
        count = min(horizon, max(0, ready_ns - stamp_ns) // self.step_ns + 1)
        actions = np.zeros((count, self.task.action_size))
        for i in range(count):
            t = stamp_ns + i * self.step_ns
            index, _, _ = self._playable(plan, t)
            if index is not None:
                actions[i] = plan.actions[index]
        return actions

    def _has_work(self) -> bool:
        state = self._pending
        return state is not None and (self._generation, state.stamp_ns) != self._planned

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._stop and not self._has_work():
                    self._lock.wait(0.1)
                if self._stop:
                    return
            self.run_once()

    def retune(self, config: PlannerNodeConfig) -> None:
        """New planner parameters (`PlannerCore.retune` checked them): the worker's next plan uses them,
        going on with the episode's generator and history; the warm start, the plan being played,
        is cut or extended to the new horizon."""
        with self._lock:
            self._retune = config

    def start(self) -> None:
        """Starts the planning worker thread."""
        self._stop = False
        self._thread = threading.Thread(target=self._work, name="planning worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops the worker after the plan it is computing (waits up to `timeout_s`)."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None


def execution_status_code(status: str) -> float:
    """The status as the number published on ~/execution_info (its index in STATUSES)."""
    return float(STATUSES.index(status))


__all__ = ["LATENCY_WINDOW", "STATUSES", "AsyncCore", "Tick", "execution_status_code"]
