"""Planning beside control without ROS: the executor reads plans by time and never waits for the planner.

A fake planner stands in for MPC: it plans a recognisable sequence, can be held
inside `plan` (a slow plan) until the test releases it, can let time pass on the
injected clock (its latency), or raise. Time is the injected clock, so nothing
here depends on how fast the machine is: no timing thresholds.
"""

import threading
import types

import numpy as np
import pytest

from tdm_control.controller import Controller
from tdm_control.history import History
from tdm_control.nodes.async_core import AsyncCore
from tdm_control.nodes.planner_core import PlannerCore, PlannerNodeConfig
from tdm_control.nodes.trajectory import Trajectory, shift
from tdm_control.planning.base import PlanInfo, Planner

MS = 1_000_000
"""ns per ms."""
STEP = 20 * MS
"""The model step in these tests: action_repeat 2 x cartpole's 10 ms control step."""
HORIZON = 10
NAMES = ("slider", "hinge_1")
WAIT_S = 60.0
"""Longest a test waits for the worker thread (it normally takes microseconds)."""


# ----------------------------------------------------------------------------- the trajectory
def plan_of(values, stamp_ns=0, step_ns=STEP) -> Trajectory:
    actions = np.asarray(values, dtype=np.float64).reshape(-1, 1)  # (N, 1)
    return Trajectory(actions, 10.0 * actions, stamp_ns, step_ns)


def test_a_plan_is_indexed_by_time_and_says_nothing_past_its_end():
    plan = plan_of([0.1, 0.2, 0.3], stamp_ns=100 * MS)
    assert plan.end_ns == 160 * MS and plan.horizon == 3
    times = [100, 110, 119, 120, 139, 140, 159]
    assert [plan.index_at(t * MS) for t in times] == [0, 0, 0, 1, 1, 2, 2]
    assert plan.action_at(125 * MS).tolist() == [0.2] and plan.torque_at(125 * MS).tolist() == [2.0]
    assert plan.action_at(160 * MS) is None and plan.torque_at(500 * MS) is None
    assert plan.index_at(95 * MS) == 0  # a clock a little behind the state: the first action
    assert plan.age_s(350 * MS) == pytest.approx(0.25)


def test_the_warm_start_is_shifted_by_the_whole_model_steps_that_elapsed():
    plan = plan_of([1, 2, 3, 4, 5])
    cases = {0.0: [1, 2, 3, 4, 5],
             0.02: [2, 3, 4, 5, 5],      # one model step
             0.039: [2, 3, 4, 5, 5],     # not yet two: the action still being played comes first
             0.04: [3, 4, 5, 5, 5],
             0.06 + 1e-12: [4, 5, 5, 5, 5],
             0.2: [5, 5, 5, 5, 5],       # past the end: the last action repeated
             -0.01: [1, 2, 3, 4, 5]}
    for elapsed, expected in cases.items():
        shifted = shift(plan, elapsed)
        assert shifted.shape == (5, 1) and shifted[:, 0].tolist() == expected, elapsed
        # The shifted plan's first action is the one the old plan holds at the new state's time.
        if 0 <= elapsed < 0.1:
            assert shifted[0] == plan.action_at(round(elapsed * 1e9))


# ----------------------------------------------------------------------------- fakes
class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class FakeLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def debug(self, message, throttle_s=None, throttle_key=None):
        self.lines.append(("debug", message))

    def info(self, message, throttle_s=None, throttle_key=None):
        self.lines.append(("info", message))

    def warning(self, message, throttle_s=None, throttle_key=None):
        self.lines.append(("warning", message))

    def error(self, message, throttle_s=None, throttle_key=None):
        self.lines.append(("error", message))

    def has(self, level: str, text: str) -> bool:
        return any(lv == level and text in line for lv, line in self.lines)


class SlowPlanner(Planner):
    """Plans action i = `value` + 0.01 i (N = HORIZON); optionally held, slow on the clock, or raising."""

    def __init__(self, dynamics, clock: FakeClock) -> None:
        super().__init__(dynamics, objective=None, action_size=1, rng=None)
        self.config = types.SimpleNamespace(horizon=HORIZON)
        self.clock = clock
        self.value = 0.5
        self.latency_ns = 0
        self.error: Exception | None = None
        self.gate: threading.Event | None = None  # set: plan waits inside until released
        self.inside = threading.Event()
        self.calls: list[dict] = []

    def plan(self, obs, history: History):
        obs_h, rewards_h, actions_h = history.arrays()
        self.calls.append({"obs": obs.copy(), "rewards": rewards_h.tolist(), "actions": actions_h.tolist(),
                           "current_reward": history.current_reward, "guess": self._guess, "fixed": self._fixed})
        self.inside.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT_S)
        self.clock.now += self.latency_ns
        if self.error is not None:
            raise self.error
        sequence = (self.value + 0.01 * np.arange(HORIZON))[:, None]  # (N, 1)
        self.last = PlanInfo(1.0, sequence, 1, 1)
        return sequence[0]


@pytest.fixture
def setup(tasks):
    """An AsyncCore over the cartpole (action repeat 2: 20 ms model steps) with a SlowPlanner and a fake clock."""
    config = PlannerNodeConfig(model="mujoco", action_repeat=2, execution="async", joints=("slider",),
                               max_plan_age=0.15, episode_topic="")
    core = PlannerCore(config)
    assert core.error is None
    core.dynamics.history_steps = 4  # keep a history, as a sequence model does (the ground truth needs none)
    clock, log = FakeClock(), FakeLog()
    planner = SlowPlanner(core.dynamics, clock)
    executor = AsyncCore(core, clock, log, controller_factory=lambda spec, task, episode, dynamics:
                         Controller(task, planner))
    gear = tasks["cartpole_swingup"].gear
    yield executor, planner, clock, log, gear
    executor.stop()
    core.close()


def state(executor, t_ms, angle=3.0):
    """A joint state at t_ms; the clock is set to it, as /clock arrives with each state under sim time."""
    executor.clock.now = t_ms * MS
    assert executor.on_joint_state(t_ms * MS, NAMES, [0.001 * t_ms, angle], [0.0, 0.1]) is None


def tick(executor, clock, t_ms):
    clock.now = t_ms * MS
    return executor.tick(t_ms * MS)


def wait_for(condition, what):
    event = threading.Event()
    for _ in range(int(WAIT_S / 0.01)):
        if condition():
            return
        event.wait(0.01)
    pytest.fail(f"timed out waiting for {what}")


# ----------------------------------------------------------------------------- the executor
def test_commands_keep_coming_by_time_from_the_current_plan_while_a_slow_plan_runs(setup):
    executor, planner, clock, log, gear = setup
    state(executor, 0)
    assert tick(executor, clock, 0).status == "no plan"  # the first plan is not ready yet
    first = executor.run_once()
    assert first.stamp_ns == 0 and first.step_ns == STEP
    state(executor, 20)
    planner.gate, planner.value = threading.Event(), -0.5
    executor.start()
    assert planner.inside.wait(WAIT_S)  # the worker is now inside a plan that does not finish
    commands = []
    for t in range(20, 130, 10):  # 11 ticks at the control rate, the plan still running
        result = tick(executor, clock, t)
        assert result.status == "ok" and result.plan is first
        commands.append(result.command.tolist())
    # Each action of the first plan held for its model step (two ticks), read by time from its stamp.
    expected = [[gear[0] * first.actions[t // 20][0]] for t in range(20, 130, 10)]
    assert commands == expected
    planner.gate.set()
    wait_for(lambda: executor.plan is not first, "the slow plan")
    second = executor.plan
    assert second.stamp_ns == 20 * MS
    result = tick(executor, clock, 130)
    assert result.new_plan and result.plan is second
    assert result.command.tolist() == [gear[0] * second.actions[(130 - 20) // 20][0]]
    assert not tick(executor, clock, 140).new_plan


def test_switching_plans_mid_trajectory_plays_the_new_plan_at_the_right_index(setup):
    executor, planner, clock, log, gear = setup
    planner.latency_ns = 50 * MS  # each plan takes 50 ms on the clock
    state(executor, 0)
    first = executor.run_once()  # planned from 0, ready at 50 ms
    for t in (10, 20, 30):
        state(executor, t)
        assert tick(executor, clock, t).plan is first
    state(executor, 40)
    clock.now = 45 * MS  # the worker starts 5 ms after the state
    planner.value = -0.5
    second = executor.run_once()  # planned from 40 ms, ready at 95 ms
    # Model steps beginning by the expected ready time (45 + 50 ms) keep what the first plan plays then.
    fixed = planner.calls[-1]["fixed"]
    np.testing.assert_array_equal(fixed, [first.action_at(t * MS) for t in (40, 60, 80)])
    np.testing.assert_array_equal(second.actions[:3], fixed)
    assert second.actions[3, 0] == pytest.approx(-0.5 + 0.03)  # then the new plan's own actions
    for t, index in [(100, 3), (110, 3), (120, 4), (130, 4), (140, 5)]:
        result = tick(executor, clock, t)
        assert result.plan is second and result.command.tolist() == [gear[0] * second.actions[index][0]], t


def test_the_warm_start_is_the_current_plan_shifted_by_the_time_that_passed(setup):
    executor, planner, clock, log, gear = setup
    state(executor, 0)
    first = executor.run_once()
    call = planner.calls[-1]
    assert call["guess"] is None  # nothing to warm-start from at the episode's start
    np.testing.assert_array_equal(call["fixed"], [[0.0]])  # the state's own step: zero torque, no plan yet
    for t in (20, 40, 60):
        state(executor, t)
    executor.run_once()  # from the newest state (60 ms): three model steps later
    np.testing.assert_array_equal(planner.calls[-1]["guess"], shift(first, 0.06))
    assert planner.calls[-1]["guess"][0, 0] == first.actions[3, 0]


def test_an_expired_plan_gives_zero_torque_and_a_warning(setup):
    executor, planner, clock, log, gear = setup
    state(executor, 0)
    executor.run_once()
    assert tick(executor, clock, 150).status == "ok"  # 0.15 s old: max_plan_age 0.15 s still allows it
    late = tick(executor, clock, 160)
    assert late.status == "expired" and late.command.tolist() == [0.0] and late.plan is None
    assert log.has("warning", "the newest plan is 0.160 s old (max_plan_age 0.15 s): sending zero torque")
    # A plan that ran out is expired too, whatever its age.
    executor.max_age_ns = 10**12
    end = tick(executor, clock, 200)  # HORIZON x 20 ms
    assert end.status == "expired" and end.command.tolist() == [0.0]
    assert log.has("warning", "the plan from 0.000 s ran out at 0.200 s")


def test_a_planner_that_raises_leaves_the_executor_running_with_zero_torque(setup):
    executor, planner, clock, log, gear = setup
    planner.error = RuntimeError("the model exploded")
    executor.start()
    state(executor, 0)
    wait_for(lambda: executor.planning_error, "the failed plan")
    for t in range(0, 100, 10):
        if t % 20 == 0 and t:
            state(executor, t)
        result = tick(executor, clock, t)
        assert result.status == "error" and result.command.tolist() == [0.0]
        assert "planning failed: RuntimeError: the model exploded" in result.message
    assert log.has("error", "RuntimeError: the model exploded")
    assert executor._thread.is_alive()  # the worker goes on...
    planner.error = None
    state(executor, 100)
    wait_for(lambda: executor.plan is not None, "a plan after the planner recovered")  # ...and plans again
    result = tick(executor, clock, 100)
    assert result.status == "ok" and executor.planning_error is None


def test_a_failed_plan_leaves_the_current_one_playing_until_it_expires(setup):
    executor, planner, clock, log, gear = setup
    state(executor, 0)
    first = executor.run_once()
    planner.error = ValueError("bad")
    state(executor, 20)
    assert executor.run_once() is None and executor.plan is first
    assert tick(executor, clock, 40).status == "ok"
    result = tick(executor, clock, 160)
    assert result.status == "error" and "old (max_plan_age 0.15 s); planning failed: ValueError: bad" in result.message


def test_the_history_holds_what_was_executed_once_per_model_step(setup, tasks):
    executor, planner, clock, log, gear = setup
    task = tasks["cartpole_swingup"]
    state(executor, 0)
    tick(executor, clock, 0)  # no plan: the first model step is executed with zero torque
    first = executor.run_once()
    for t in (10, 20, 30, 40):
        state(executor, t)
        tick(executor, clock, t)
    assert executor.run_once().stamp_ns == 40 * MS  # from the newest model step's state
    call = planner.calls[-1]
    obs = [task.observation(np.array([0.001 * t, 3.0]), np.array([0.0, 0.1])) for t in (0, 20, 40)]
    # Steps 0 and 20 ms, each with the action commanded at its first tick; 10 and 30 ms are inside them.
    assert call["actions"] == [[0.0], [first.actions[1, 0]]]
    assert call["rewards"] == [0.0, float(task.reward(obs[1], np.zeros(1)))]
    assert call["current_reward"] == float(task.reward(obs[2], first.actions[1]))
    np.testing.assert_array_equal(call["obs"], obs[2])


def test_a_state_inside_a_model_step_is_not_planned_from(setup):
    executor, planner, clock, log, gear = setup
    state(executor, 0)
    assert executor.run_once() is not None
    state(executor, 10)  # halfway through the 20 ms model step
    assert executor.run_once() is None
    state(executor, 21)  # jitter: within half a control step of the grid point
    assert executor.run_once().stamp_ns == 21 * MS


def test_a_new_episode_drops_the_plan_and_one_still_being_computed(setup):
    executor, planner, clock, log, gear = setup
    state(executor, 500)
    executor.run_once()
    state(executor, 520)
    planner.gate = threading.Event()
    executor.start()
    assert planner.inside.wait(WAIT_S)
    state(executor, 0)  # time went back: the simulation was reset (no episode topic here)
    assert executor.episode == 1 and executor.plan is None
    planner.gate.set()
    wait_for(lambda: len(planner.calls) == 3, "the new episode's first plan")
    wait_for(lambda: executor.plan is not None, "the new episode's first plan")
    assert executor.plan.stamp_ns == 0  # the plan from episode 0's state was dropped
    assert planner.calls[-1]["actions"] == [] and planner.calls[-1]["guess"] is None


def test_bad_joint_states_are_refused_and_not_planned_from(setup):
    executor, planner, clock, log, gear = setup
    error = executor.on_joint_state(0, NAMES, [0.0, float("nan")], [0.0, 0.0])
    assert "non-finite values: position[hinge_1]=nan" in error
    assert executor.run_once() is None


def test_execution_parameters_are_checked():
    from tdm_control.config import ConfigError

    for params, message in [({"execution": "fast"}, "execution: must be one of lockstep, async"),
                            ({"max_plan_age": 0.0}, "max_plan_age: must be > 0 s"),
                            ({"threads": -1}, "threads: must be >= 0")]:
        with pytest.raises(ConfigError, match=message):
            PlannerNodeConfig(**params)
    with pytest.raises(ValueError, match="needs a planner that loaded"):
        AsyncCore(PlannerCore(PlannerNodeConfig(task="cartpole_swingdown", execution="async")), FakeClock())


def test_a_forged_stamp_cannot_hold_up_planning_and_its_history_is_dropped(tasks):
    """The stamp policy of lockstep (tdm_control/nodes/stamps.py) holds here too, with an episode topic."""
    from tdm_control.nodes.stamps import STALE_RUN

    config = PlannerNodeConfig(model="mujoco", action_repeat=2, execution="async", joints=("slider",))
    core = PlannerCore(config)
    clock, log = FakeClock(), FakeLog()
    planner = SlowPlanner(core.dynamics, clock)
    executor = AsyncCore(core, clock, log, controller_factory=lambda spec, task, episode, dynamics:
                         Controller(task, planner))
    executor.set_episode(0)
    state(executor, 0)
    assert executor.run_once() is not None
    forged = (2**31 - 1) * 10**9
    assert executor.on_joint_state(forged, NAMES, [0.0, 3.0], [0.0, 0.1]) is None
    assert executor.run_once().stamp_ns == forged  # taken once (a plan nobody can play: too far ahead)
    for _ in range(STALE_RUN - 1):
        state(executor, 20)
        assert executor.run_once() is None  # the forged state is the newest: real ones are stale
    assert log.has("warning", "older than the one taken last")
    state(executor, 20)  # the run is complete: the forged stamp is dropped, the episode planned afresh
    assert log.has("error", "that stamp was bad") and executor.episode == 0
    plan = executor.run_once()
    assert plan is not None and plan.stamp_ns == 20 * MS
    assert planner.calls[-1]["actions"] == [] and planner.calls[-1]["guess"] is None  # no history, no warm start
