#!/usr/bin/env bash
# The main job: set-up, then the closed loop over ROS 2 topics: the MuJoCo bridge and the MPC
# planner as two processes (embedded DDS transport where ROS 2 is absent), one cartpole
# swing-up episode of 1000 lockstep steps, progress every 100 steps, the return at the end.
# The model is planner_node.model in config/cartpole.yaml. Extra arguments go to
# `tdm-control launch`, e.g. --steps 200 or --set planner_node.planner_params.samples=64.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh cpu,ros
venv="${TDM_VENV:-.venv}"
export MUJOCO_GL="${MUJOCO_GL:-disable}"
exec "$venv"/bin/tdm-control launch config/cartpole.yaml --result results/demo.json "$@"
