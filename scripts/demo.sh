#!/usr/bin/env bash
# The main job: set-up, then one closed-loop MPC episode of cartpole swing-up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh cpu,ros
venv="${TDM_VENV:-.venv}"
export MUJOCO_GL="${MUJOCO_GL:-disable}"
exec "$venv"/bin/tdm-control eval --task cartpole_swingup --model mujoco --planner warm_start \
  --samples 128 --horizon 100 --episodes 1 --seed 0 --out results/demo.json "$@"
