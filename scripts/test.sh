#!/usr/bin/env bash
# Set-up, then lint (ruff) and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh cpu,train,ros,dev
venv="${TDM_VENV:-.venv}"
export MUJOCO_GL="${MUJOCO_GL:-disable}"
# The video test renders offscreen: it needs EGL or OSMesa. Where neither works (a fresh machine
# without Mesa's EGL), install Debian's OSMesa (as root with apt; CI runs as root), else say what to do.
if ! "$venv"/bin/python -c "from tdm_control.evaluation.video import choose_backend; choose_backend()" 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[test] no offscreen OpenGL backend: installing libosmesa6"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libosmesa6 >/dev/null
  else
    echo "[test] no offscreen OpenGL backend (EGL or OSMesa): the video tests will fail; install libosmesa6" >&2
  fi
fi
echo "[test] ruff check ."
"$venv"/bin/ruff check .
status=0
"$venv"/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "[test] no tests were collected: that is a failure" >&2
  exit 1
fi
exit "$status"
