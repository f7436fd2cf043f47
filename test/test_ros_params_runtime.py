"""Parameters at run time (issue 20), without DDS: the rcl_interfaces service rules, the planner's retune.

`ParameterServer` answers as rclcpp's ParameterService does; the planner core takes new samples,
horizon or noise through the checks of the parameter file and plans its next plan with them, in
lockstep and in async execution. The services over DDS, from another process: test_ros_graph.py.
"""

import numpy as np
import pytest

from tdm_control.config import ConfigError
from tdm_control.nodes.async_core import AsyncCore
from tdm_control.nodes.planner_core import PlannerCore, PlannerNodeConfig
from tdm_control.nodes.trajectory import fit_horizon
from tdm_control.ros import interfaces as rcl
from tdm_control.ros.interfaces import ParameterType
from tdm_control.ros.param_services import ParameterServer, from_parameter_value, list_parameters, to_parameter_value
from tdm_control.ros.rosout import RosoutLogger, call_site, logger_name

NAMES = ("slider", "hinge_1")


# ----------------------------------------------------------------------------- values and the services
def test_values_convert_both_ways_as_ros2_types_them():
    for value, kind in ((True, ParameterType.BOOL), (3, ParameterType.INTEGER), (0.5, ParameterType.DOUBLE),
                        ("x", ParameterType.STRING), (b"\x00\xff", ParameterType.BYTE_ARRAY),
                        ([True], ParameterType.BOOL_ARRAY), ([1, 2], ParameterType.INTEGER_ARRAY),
                        ([1.5, 2.0], ParameterType.DOUBLE_ARRAY), (["a"], ParameterType.STRING_ARRAY)):
        converted = to_parameter_value(value)
        assert converted.type == kind and from_parameter_value(converted) == value
    assert to_parameter_value([1, 2.5]).double_array_value == [1.0, 2.5]  # a YAML list of numbers: doubles
    for impossible in (None, [], {"a": 1}, [1, "a"]):
        assert to_parameter_value(impossible) is None


def test_list_follows_rclcpp():
    names = ["use_sim_time", "planner_params.samples", "planner_params.horizon", "a.b.c"]
    everything = list_parameters(names, [], 0)
    assert everything.names == sorted(names) and everything.prefixes == ["a.b", "planner_params"]
    assert list_parameters(names, [], 1).names == ["use_sim_time"]  # depth counts separators
    assert list_parameters(names, ["planner_params"], 1).names == ["planner_params.horizon", "planner_params.samples"]
    assert list_parameters(names, ["a"], 1).names == [] and list_parameters(names, ["a"], 2).names == ["a.b.c"]
    assert list_parameters(names, ["a"], 0).names == ["a.b.c"]  # depth 0 below a prefix: all of it


@pytest.fixture
def server():
    events, changes = [], []

    def handler(values):
        if values.get("planner_params.samples", 1) < 1:
            return "planner_params.samples: must be >= 1"
        changes.append(values)
        return None

    server = ParameterServer("/planner_node", lambda: 5_000_000_000, events.append)
    assert server.declare({"use_sim_time": True, "planner_params.samples": 64, "planner_params.noise_variance": 2.0,
                           "model": "mujoco", "joints": []}) == ["joints"]
    server.accept_changes(["planner_params.samples", "planner_params.noise_variance"], handler, "next plan")
    return server, events, changes


def param(name, value):
    return rcl.Parameter(name=name, value=to_parameter_value(value))


def test_get_and_describe_answer_all_names_or_none(server):
    server, events, _ = server
    got = server.get_parameters(rcl.GetParametersRequest(names=["model", "planner_params.samples"])).values
    assert [from_parameter_value(v) for v in got] == ["mujoco", 64]
    assert server.get_parameters(rcl.GetParametersRequest(names=["model", "nope"])).values == []
    described = server.describe_parameters(rcl.DescribeParametersRequest(names=["model", "planner_params.samples"]))
    assert [(d.read_only, d.type) for d in described.descriptors] == [(True, ParameterType.STRING),
                                                                      (False, ParameterType.INTEGER)]
    assert described.descriptors[1].additional_constraints == "next plan"
    assert server.get_parameter_types(rcl.GetParameterTypesRequest(names=["model"])).types == [ParameterType.STRING]
    assert server.get_parameter_types(rcl.GetParameterTypesRequest(names=["model", "nope"])).types == []
    (event,) = events  # the declaration, announced once
    assert event.node == "/planner_node" and event.stamp.sec == 5 and len(event.new_parameters) == 4


def test_set_changes_what_the_node_accepts_and_refuses_the_rest_with_the_reason(server):
    server, events, changes = server
    results = server.set_parameters(rcl.SetParametersRequest(parameters=[
        param("planner_params.samples", 32), param("model", "other"), param("nope", 1),
        param("planner_params.samples", "many"), param("planner_params.samples", 0),
        param("planner_params.noise_variance", 1)]))
    assert [r.successful for r in results.results] == [True, False, False, False, False, True]
    reasons = [r.reason for r in results.results]
    assert "read-only" in reasons[1] and "planner_params.samples" in reasons[1]  # says what can change
    assert "not declared" in reasons[2] and "is of type integer" in reasons[3] and ">= 1" in reasons[4]
    assert changes == [{"planner_params.samples": 32}, {"planner_params.noise_variance": 1.0}]  # an int for a double
    assert server.value("planner_params.samples") == 32 and server.value("planner_params.noise_variance") == 1.0
    assert [[(p.name, from_parameter_value(p.value)) for p in e.changed_parameters] for e in events[1:]] == \
        [[("planner_params.samples", 32)], [("planner_params.noise_variance", 1.0)]]


def test_set_atomically_sets_all_or_nothing(server):
    server, events, changes = server
    result = server.set_parameters_atomically(rcl.SetParametersAtomicallyRequest(parameters=[
        param("planner_params.samples", 16), param("model", "other")])).result
    assert not result.successful and "read-only" in result.reason and changes == []
    assert server.value("planner_params.samples") == 64 and len(events) == 1
    deleted = rcl.Parameter(name="planner_params.samples", value=rcl.ParameterValue())
    (result,) = server.set_parameters(rcl.SetParametersRequest(parameters=[deleted])).results
    assert "cannot be deleted" in result.reason


# ----------------------------------------------------------------------------- /rosout
def test_log_lines_carry_the_logger_name_and_where_they_were_logged():
    assert logger_name("planner_node") == "planner_node" and logger_name("n", "/ns/a") == "ns.a.n"
    published = []
    logger = RosoutLogger("planner_node", stream=open("/dev/null", "w"))
    logger.attach(published.append)
    logger.info("first")
    line = call_site()[2] - 1
    for _ in range(3):
        logger.warning("flood", throttle_s=60.0)  # written once; the lines left out are not published either
    logger.debug("below the level")
    assert [(log.level, log.msg, log.name) for log in published] == [(20, "first", "planner_node"),
                                                                     (30, "flood", "planner_node")]
    assert published[0].file == __file__ and published[0].line == line
    assert published[0].function == "test_log_lines_carry_the_logger_name_and_where_they_were_logged"
    logger.attach(None)
    logger.info("console only")
    assert len(published) == 2


# ----------------------------------------------------------------------------- the planner
def small_config(**changes) -> PlannerNodeConfig:
    return PlannerNodeConfig(model="mujoco", joints=("slider",), episode_topic="", seed=1,
                             planner_params={"samples": 6, "horizon": 5, "warm_fraction": 0.5}, **changes)


def test_the_planner_accepts_samples_horizon_and_noise_checked_as_the_parameter_file_is(tasks):
    core = PlannerCore(small_config())
    try:
        assert core.runtime_parameters() == {"planner_params.samples": 6, "planner_params.horizon": 5,
                                             "planner_params.noise_variance": 2.0}
        for changes, text in (({"planner_params.samples": 0}, "samples: must be >= 1"),
                              ({"planner_params.horizon": 2.5}, "expected an integer"),
                              ({"planner_params.samples": 10 ** 12}, "lower samples or horizon"),
                              ({"planner_params.warm_fraction": 0.1}, "cannot change while the node runs"),
                              ({"model": "x"}, "these can: planner_params.samples")):
            with pytest.raises(ConfigError, match=text):
                core.retune(changes)
        assert core.config == small_config()  # nothing changed
        assert core.retune({"planner_params.noise_variance": 1}).planner_params["noise_variance"] == 1.0
    finally:
        core.close()
    broken = PlannerCore(small_config(), parameter_error="bad parameter x")
    assert broken.runtime_parameters() == {}
    with pytest.raises(ConfigError, match="it cannot plan"):
        broken.retune({"planner_params.samples": 3})


def test_lockstep_plans_the_next_state_with_the_new_horizon_and_the_same_generator(tasks):
    core = PlannerCore(small_config())
    try:
        for k in range(3):
            assert core.on_joint_state(k * 10_000_000, NAMES, [0.0, 3.0], [0.0, 0.0]).error is None
        controller, planner = core.controller, core.controller.planner
        assert controller.last_plan.plan.shape == (5, 1)
        core.retune({"planner_params.horizon": 3, "planner_params.samples": 4})
        answer = core.on_joint_state(30_000_000, NAMES, [0.0, 3.0], [0.0, 0.0])
        assert answer.error is None and core.controller.last_plan.plan.shape == (3, 1)
        assert core.controller.last_plan.candidates == 4
        assert core.controller.planner is not planner and core.controller.planner.rng is planner.rng
        assert core.controller is controller  # the episode goes on: its history, the action held
    finally:
        core.close()


def test_async_plans_with_the_new_horizon_warm_started_from_the_plan_being_played(tasks):
    core = PlannerCore(small_config(execution="async", action_repeat=1))
    now = [0]
    executor = AsyncCore(core, lambda: now[0])
    try:
        assert executor.on_joint_state(0, NAMES, [0.0, 3.0], [0.0, 0.0]) is None
        first = executor.run_once()
        assert first.horizon == 5
        rng = executor._controller.planner.rng
        executor.retune(core.retune({"planner_params.horizon": 8}))
        now[0] = 10_000_000
        executor.tick(now[0])
        assert executor.on_joint_state(now[0], NAMES, [0.0, 3.0], [0.0, 0.0]) is None
        second = executor.run_once()
        assert second is not None and second.horizon == 8 and executor._controller.planner.rng is rng
    finally:
        executor.stop()
        core.close()


def test_a_warm_start_fits_a_new_horizon():
    actions = np.arange(6.0).reshape(3, 2)  # (N, m)
    assert fit_horizon(actions, 2).tolist() == [[0, 1], [2, 3]]
    assert fit_horizon(actions, 5).tolist() == [[0, 1], [2, 3], [4, 5], [4, 5], [4, 5]]
