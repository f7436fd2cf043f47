"""The package as a ROS 2 user builds it: `colcon build` in a fresh workspace, then the installed
executables, run from the sourced install space as `ros2 run` runs them, close the loop.

colcon (colcon-core, colcon-ros, colcon-python-setup-py from PyPI, the `dev` extra) builds the
ament_python package with this test's Python; the bridge and the planner then run from
`install/tdm_control/lib/tdm_control/` in another working directory, with the installed
`share/tdm_control/config/cartpole.yaml` and the shipped TDM found through the ament index
(AMENT_PREFIX_PATH, set by `install/setup.sh`), over the embedded transport: one short lockstep
episode whose return equals the in-process evaluation's.
"""

import filecmp
import json
import os
import shutil
import subprocess
import sys

import pytest
from ros_helpers import DEADLINE_S, ROOT, ros_domain  # noqa: F401 (fixture)

from tdm_control.evaluation.episodes import EvalConfig, evaluate

STEPS = 20
SMALL = {"samples": 16, "horizon": 8}
NOT_SOURCES = ("build", "install", "log", "data", "runs", "results", "bags", ".git", ".venv*", "__pycache__",
               "*.egg-info", ".pytest_cache", "*.log")
"""What a clone of the repository would not hold: outputs, the environment, caches."""


def colcon() -> str:
    path = shutil.which("colcon", path=os.path.dirname(sys.executable))
    if path is None:
        pytest.fail("colcon is not installed in this environment: pip install -e '.[dev]' (colcon-core, colcon-ros, "
                    "colcon-python-setup-py)")
    return path


def in_workspace(workspace, command: str, **kw) -> subprocess.CompletedProcess:
    """`command` in a POSIX shell that sourced the workspace's install/setup.sh, as a ROS 2 user's shell."""
    return subprocess.run(["sh", "-c", f". {workspace}/install/setup.sh && {command}"], text=True,
                          capture_output=True, timeout=DEADLINE_S, **kw)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A colcon workspace with this checkout in src/, built."""
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(ROOT, ws / "src" / "tdm_control", ignore=shutil.ignore_patterns(*NOT_SOURCES))
    build = subprocess.run([colcon(), "build", "--event-handlers", "console_direct-"], cwd=ws, text=True,
                           capture_output=True, timeout=5 * DEADLINE_S)
    assert build.returncode == 0, build.stdout + build.stderr
    assert "Finished <<< tdm_control" in build.stdout, build.stdout + build.stderr
    return ws


def test_colcon_installs_the_executables_the_ament_index_marker_launch_config_and_models(workspace):
    prefix = workspace / "install" / "tdm_control"
    assert (prefix / "share/ament_index/resource_index/packages/tdm_control").is_file()
    assert (prefix / "share/tdm_control/package.xml").is_file()
    for executable in ("sim_bridge", "planner_node"):
        assert os.access(prefix / "lib/tdm_control" / executable, os.X_OK), executable
    for folder, names in (("launch", ("cartpole.launch.py", "walker.launch.py")),
                          ("config", ("cartpole.yaml", "walker.yaml")), ("models", ("cartpole_swingup_tdm.onnx",))):
        for name in names:
            assert filecmp.cmp(prefix / "share/tdm_control" / folder / name, os.path.join(ROOT, folder, name),
                               shallow=False), f"{folder}/{name}"
    # The sourced workspace imports the installed package, not this checkout.
    found = in_workspace(workspace, f"{sys.executable} -c 'import sim_bridge, tdm_control; "
                                    "print(sim_bridge.__file__); print(tdm_control.__file__)'", cwd=workspace)
    assert found.returncode == 0, found.stderr
    assert all(line.startswith(str(prefix / "lib")) for line in found.stdout.split()), found.stdout


def test_installed_executables_close_the_loop(workspace, tmp_path, ros_domain):  # noqa: F811
    share = workspace / "install/tdm_control/share/tdm_control"
    overrides = tmp_path / "overrides.yaml"
    result = tmp_path / "result.json"
    overrides.write_text(json.dumps({
        "sim_bridge": {"ros__parameters": {"steps": STEPS, "episodes": 1, "result_path": str(result)}},
        "planner_node": {"ros__parameters": {"planner_params": SMALL}}}))
    ros_args = f"--ros-args --params-file {share}/config/cartpole.yaml --params-file {overrides}"
    env = dict(os.environ, TDM_TRANSPORT="embedded", PYTHONUNBUFFERED="1")
    lib = workspace / "install/tdm_control/lib/tdm_control"
    planner = subprocess.Popen(["sh", "-c", f". {workspace}/install/setup.sh && exec {lib}/planner_node {ros_args}"],
                               cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        bridge = in_workspace(workspace, f"exec {lib}/sim_bridge {ros_args}", cwd=tmp_path, env=env)
    finally:
        planner.terminate()
        planner_log = planner.communicate(timeout=DEADLINE_S)[0]
    assert bridge.returncode == 0, bridge.stdout + bridge.stderr + planner_log
    # The config's relative model path: not in the working directory, not beside the installed Python
    # package, so found in the installed share folder through the ament index.
    assert "planning: task cartpole_swingup, model models/cartpole_swingup_tdm.onnx" in planner_log, planner_log
    returns = json.loads(result.read_text())["returns"]
    with open(os.path.join(ROOT, "config", "cartpole.yaml")) as f:
        import yaml

        params = yaml.safe_load(f)["planner_node"]["ros__parameters"]["planner_params"]
    reference = evaluate(EvalConfig(task="cartpole_swingup", model=str(share / "models/cartpole_swingup_tdm.onnx"),
                                    planner="warm_start", planner_params={**params, **SMALL}, episodes=1,
                                    steps=STEPS, seed=0), show_progress=False)["returns"]
    assert returns == reference
