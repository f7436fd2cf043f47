"""The closed loop as a ROS 2 launch description (needs `launch` and `launch_ros`: a sourced workspace).

The files in launch/ call `closed_loop(<config file>)`; the nodes are
`tdm_control.ros.launcher.NODES`, the same ones `tdm-control launch` starts.
"""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from tdm_control.ros.launcher import NODES

PACKAGE = "tdm_control"
FINISHING_NODE = "sim_bridge"
"""The launch ends when this node exits (the bridge does after its `episodes`)."""


def closed_loop(config_file: str) -> LaunchDescription:
    """Bridge and planner with parameters from `params_file` (default: the installed `config/<config_file>`).

    Launch arguments: `params_file` (a ros__parameters YAML) and `use_sim_time`
    (default true: the bridge publishes /clock).
    """
    params_file = LaunchConfiguration("params_file")
    use_sim_time = LaunchConfiguration("use_sim_time")
    actions = [
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config", config_file]),
            description="ros__parameters YAML for sim_bridge and planner_node"),
        DeclareLaunchArgument("use_sim_time", default_value="true",
                              description="nodes use /clock, which the bridge publishes"),
    ]
    for spec in NODES:
        actions.append(Node(
            package=PACKAGE, executable=spec.executable, name=spec.name, output="screen",
            parameters=[params_file, {"use_sim_time": use_sim_time}],
            on_exit=Shutdown(reason=f"{spec.name} exited") if spec.name == FINISHING_NODE else None))
    return LaunchDescription(actions)
