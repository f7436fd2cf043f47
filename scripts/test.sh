#!/usr/bin/env bash
# Set-up, then lint (ruff) and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh cpu,train,ros,dev
venv="${TDM_VENV:-.venv}"
export MUJOCO_GL="${MUJOCO_GL:-disable}"
echo "[test] ruff check ."
"$venv"/bin/ruff check .
status=0
"$venv"/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "[test] no tests were collected: that is a failure" >&2
  exit 1
fi
exit "$status"
