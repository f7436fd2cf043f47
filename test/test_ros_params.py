"""Parameters as `ros2 run` gives them: --ros-args, params files, rclcpp's precedence, typed configs."""

import dataclasses
import os

import pytest
from ros_helpers import CARTPOLE_CONFIG, ROOT

from sim_bridge.bridge_core import BridgeConfig
from tdm_control.config import ConfigError
from tdm_control.nodes.planner_core import PlannerNodeConfig
from tdm_control.ros.params import (
    config_from_parameters,
    flatten,
    nest,
    node_parameters,
    parameters_of,
    parse_ros_args,
    read_params_file,
    salvage_config,
    write_params_file,
)
from tdm_control.ros.transport import resolve_topic

PARAMS = """
/**:
  ros__parameters:
    task: cartpole_swingup
    seed: 1
planner_node:
  ros__parameters:
    seed: 2
    planner_params:
      samples: 64
      horizon: 10
/robots/planner_node:
  ros__parameters:
    seed: 3
robots:
  sim_bridge:
    ros__parameters:
      mode: realtime
"""


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS)
    return str(path)


def test_params_file_keys_become_fully_qualified_patterns(params_file):
    tree = read_params_file(params_file)
    assert tree["/**"] == {"task": "cartpole_swingup", "seed": 1}
    assert tree["/planner_node"] == {"seed": 2, "planner_params.samples": 64, "planner_params.horizon": 10}
    assert tree["/robots/planner_node"] == {"seed": 3}
    assert tree["/robots/sim_bridge"] == {"mode": "realtime"}


def test_node_entries_override_wildcard_and_later_sources_override_earlier(params_file, tmp_path):
    later = tmp_path / "later.yaml"
    later.write_text("planner_node:\n  ros__parameters:\n    planner_params: {samples: 8}\n")
    ros = parse_ros_args(["--ros-args", "--params-file", params_file, "-p", "seed:=9", "-p", "objective:=predicted",
                          "--params-file", str(later)])
    params = node_parameters(ros, "/planner_node")
    # As in rclcpp: -p goes to '/**', which the node's own entry (seed: 2) overrides.
    assert params == {"task": "cartpole_swingup", "seed": 2, "objective": "predicted",
                      "planner_params.samples": 8, "planner_params.horizon": 10}
    assert node_parameters(ros, "/sim_bridge") == {"task": "cartpole_swingup", "seed": 9, "objective": "predicted"}
    assert node_parameters(ros, "/robots/planner_node")["seed"] == 3


def test_node_prefixed_param_remaps_and_other_arguments(params_file):
    ros = parse_ros_args(["extra", "--ros-args", "-p", "planner:seed:=5", "-p", "joints:=[a, b]",
                          "-r", "__node:=planner", "-r", "__ns:=/robots", "-r", "/joint_states:=/arm/joint_states",
                          "--log-level", "debug", "--", "tail"])
    assert ros.node_name == "planner" and ros.namespace == "/robots"
    assert ros.remaps == {"/joint_states": "/arm/joint_states"} and ros.log_level == "debug"
    assert ros.other == ["extra", "tail"]
    assert node_parameters(ros, "/planner") == {"seed": 5, "joints": ["a", "b"]}


@pytest.mark.parametrize("argv, message", [
    (["--ros-args", "--enclave", "x"], "unsupported argument '--enclave'"),
    (["--ros-args", "-p", "seed"], "expected name:=value"),
    (["--ros-args", "-p"], "-p needs a value"),
    (["--ros-args", "--params-file", "/no/such/file.yaml"], "does not exist"),
])
def test_bad_ros_arguments_say_what_is_wrong(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_ros_args(argv)


def test_malformed_params_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("planner_node:\n  ros__parameters: [1, 2]\n")
    with pytest.raises(ConfigError, match="ros__parameters must be a mapping"):
        read_params_file(str(path))
    path.write_text("planner_node: {ros__parameters: {a: 1}, typo: 2}\n")
    with pytest.raises(ConfigError, match="beside ros__parameters"):
        read_params_file(str(path))


def test_flatten_nest_and_write_round_trip(tmp_path):
    values = {"a": 1, "b": {"c": [1, 2], "d": {"e": "x"}}}
    assert flatten(values) == {"a": 1, "b.c": [1, 2], "b.d.e": "x"}
    assert nest(flatten(values)) == values
    path = tmp_path / "out.yaml"
    write_params_file(str(path), {"planner_node": flatten(values)})
    assert read_params_file(str(path)) == {"/planner_node": flatten(values)}


def test_shipped_config_builds_both_node_configs():
    ros = parse_ros_args(["--ros-args", "--params-file", CARTPOLE_CONFIG])
    bridge = config_from_parameters(BridgeConfig, node_parameters(ros, "/sim_bridge"))
    planner = config_from_parameters(PlannerNodeConfig, node_parameters(ros, "/planner_node"))
    assert bridge.task == planner.task == "cartpole_swingup" and bridge.joints == planner.joints == ("slider",)
    assert bridge.mode == "lockstep" and bridge.steps == 1000
    assert planner.model == "models/cartpole_swingup_tdm.onnx" and planner.planner_params["samples"] == 64
    assert parameters_of(planner)["planner_params.samples"] == 64
    assert parameters_of(bridge)["joints"] == ["slider"]


@pytest.mark.parametrize("config_file", ["cartpole.yaml", "walker.yaml"])
def test_every_shipped_config_makes_working_cores(config_file):
    from sim_bridge.bridge_core import BridgeCore
    from tdm_control.nodes.planner_core import PlannerCore

    ros = parse_ros_args(["--ros-args", "--params-file", os.path.join(ROOT, "config", config_file)])
    bridge = BridgeCore(config_from_parameters(BridgeConfig, node_parameters(ros, "/sim_bridge")))
    planner = PlannerCore(config_from_parameters(PlannerNodeConfig, node_parameters(ros, "/planner_node")))
    assert planner.error is None and planner.layout.joints == bridge.layout.joints
    planner.close()


@pytest.mark.parametrize("params, message", [
    ({"mode": "fast"}, "mode: must be one of lockstep, realtime"),
    ({"stpes": 10}, "stpes: unknown key (did you mean 'steps'?)"),
    ({"steps": "ten"}, "steps: expected an integer"),
    ({"command_timeout": 0}, "command_timeout: must be > 0"),
    ({"joints": "slider"}, "joints: expected a list"),
])
def test_bad_bridge_parameters_are_named(params, message):
    with pytest.raises(ConfigError) as e:
        config_from_parameters(BridgeConfig, params)
    assert message in str(e.value)


def test_salvage_keeps_the_good_parameters_and_reports_the_bad():
    config, error = salvage_config(PlannerNodeConfig, {"command_topic": "/arm/commands", "sampels": 3,
                                                       "objective": "nope", "seed": 4})
    assert "sampels: unknown key" in error
    assert config.command_topic == "/arm/commands" and config.seed == 4
    assert config.objective == PlannerNodeConfig().objective
    assert salvage_config(PlannerNodeConfig, {"seed": 4}) == (dataclasses.replace(PlannerNodeConfig(), seed=4), None)


def test_topic_names_resolve_like_ros():
    assert resolve_topic("~/planning_info", "planner_node") == "/planner_node/planning_info"
    assert resolve_topic("~/episode", "sim_bridge", "/robots") == "/robots/sim_bridge/episode"
    assert resolve_topic("joint_states", "n", "/robots") == "/robots/joint_states"
    assert resolve_topic("/joint_states", "n", "/robots") == "/joint_states"
    assert resolve_topic("/joint_states", "n", "", {"/joint_states": "/arm/joint_states"}) == "/arm/joint_states"
