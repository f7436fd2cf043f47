"""Cartpole swing-up: `ros2 launch tdm_control cartpole.launch.py [params_file:=...] [use_sim_time:=...]`."""

from tdm_control.ros.launch_description import closed_loop


def generate_launch_description():
    return closed_loop("cartpole.yaml")
