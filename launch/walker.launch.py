"""Walker stand: `ros2 launch tdm_control walker.launch.py [params_file:=...] [use_sim_time:=...]`."""

from tdm_control.ros.launch_description import closed_loop


def generate_launch_description():
    return closed_loop("walker.yaml")
