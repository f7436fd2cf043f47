#!/usr/bin/env bash
# Creates the virtual environment and installs tdm_control with the given extras.
#
#   bash scripts/setup.sh [EXTRAS]     # EXTRAS: comma-separated, default "cpu,ros"
#
# Idempotent: a stamp records what was installed, so a second run with the same
# setup.py and extras returns at once. The venv lives in .venv (override: TDM_VENV).
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-cpu,ros}"
venv="${TDM_VENV:-.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
stamp="$venv/.tdm-installed-$(sha256sum setup.py | cut -c1-16)-${extras//,/-}"
if [ -f "$stamp" ]; then
  exit 0
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check)
# mujoco 4.x splits into mujoco-core and mujoco-studio, which an install of 3.17 over it leaves
# behind (and dm_control 1.0.50 breaks on them): remove all three first.
if "${pip[@]}" show -q mujoco-core >/dev/null 2>&1; then
  echo "[setup] removing mujoco 4.x packages"
  "${pip[@]}" uninstall -y -q mujoco mujoco-core mujoco-studio
fi
echo "[setup] installing tdm_control[$extras] into $venv (first run takes a few minutes)"
"${pip[@]}" install -q --upgrade pip
"${pip[@]}" install -q -e ".[$extras]"
rm -f "$venv"/.tdm-installed-*
touch "$stamp"
echo "[setup] done"
