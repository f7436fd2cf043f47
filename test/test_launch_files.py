"""The ROS 2 launch files, checked without ROS 2: they compile, and name executables and configs that exist.

`launch` and `launch_ros` are not installable here, so the launch description is
built against small recorders standing in for their classes; what is checked is
what the files ask for (package, executables, node names, parameter files,
arguments), not how ROS 2 launch runs them.
"""

import ast
import glob
import os
import py_compile
import sys
import types

import pytest
import yaml
from ros_helpers import ROOT

from tdm_control.ros.launcher import NODES

LAUNCH_FILES = sorted(glob.glob(os.path.join(ROOT, "launch", "*.launch.py")))


def console_scripts() -> dict[str, str]:
    """name -> module:function from setup.py's entry points (read, not executed)."""
    tree = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "console_scripts"
                                              for k in node.keys):
            (scripts,) = [v for k, v in zip(node.keys, node.values) if k.value == "console_scripts"]
            entries = [ast.literal_eval(e) for e in scripts.elts]
            return dict(tuple(part.strip() for part in e.split("=")) for e in entries)
    raise AssertionError("no console_scripts in setup.py")


def test_launch_files_exist_and_compile(tmp_path):
    assert {os.path.basename(p) for p in LAUNCH_FILES} >= {"cartpole.launch.py", "walker.launch.py"}
    ros_modules = [os.path.join(ROOT, "tdm_control", "ros", name)
                   for name in ("launch_description.py", "rclpy_transport.py")]  # need ROS 2 to import
    for path in LAUNCH_FILES + ros_modules:
        py_compile.compile(path, cfile=str(tmp_path / "x.pyc"), doraise=True)


def test_launched_executables_are_console_scripts_of_the_node_mains():
    scripts = console_scripts()
    for spec in NODES:
        assert scripts[spec.executable] == f"{spec.module}:main"
        __import__(spec.module)
        assert callable(sys.modules[spec.module].main)


class Recorded:
    """Stands in for a launch class: keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


@pytest.fixture
def recorders(monkeypatch):
    names = {"launch": ["LaunchDescription"], "launch.actions": ["DeclareLaunchArgument", "Shutdown"],
             "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution"],
             "launch_ros.actions": ["Node"], "launch_ros.substitutions": ["FindPackageShare"]}
    for module, classes in names.items():
        fake = types.ModuleType(module)
        for cls in classes:
            setattr(fake, cls, type(cls, (Recorded,), {}))
        monkeypatch.setitem(sys.modules, module, fake)
    monkeypatch.setitem(sys.modules, "launch_ros", types.ModuleType("launch_ros"))
    monkeypatch.delitem(sys.modules, "tdm_control.ros.launch_description", raising=False)
    yield
    sys.modules.pop("tdm_control.ros.launch_description", None)


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=os.path.basename)
def test_launch_description_names_existing_executables_and_config(path, recorders):
    namespace = {"__file__": path}
    exec(compile(open(path).read(), path, "exec"), namespace)
    description = namespace["generate_launch_description"]()
    actions = description.args[0]
    arguments = {a.args[0]: a for a in actions if type(a).__name__ == "DeclareLaunchArgument"}
    assert set(arguments) == {"params_file", "use_sim_time"}
    default = arguments["params_file"].kwargs["default_value"]  # PathJoinSubstitution([share, 'config', file])
    share, folder, config_file = default.args[0]
    assert share.args == ("tdm_control",) and folder == "config"
    config_path = os.path.join(ROOT, "config", config_file)
    assert os.path.isfile(config_path), config_path
    sections = yaml.safe_load(open(config_path))
    assert arguments["use_sim_time"].kwargs["default_value"] == "true"

    nodes = [a for a in actions if type(a).__name__ == "Node"]
    scripts = console_scripts()
    assert [(n.kwargs["name"], n.kwargs["executable"]) for n in nodes] == [(s.name, s.executable) for s in NODES]
    for node in nodes:
        assert node.kwargs["package"] == "tdm_control" and node.kwargs["executable"] in scripts
        assert node.kwargs["name"] in sections, f"{config_file} has no section for {node.kwargs['name']}"
        params_file, overrides = node.kwargs["parameters"]
        assert params_file.args == ("params_file",) and overrides["use_sim_time"].args == ("use_sim_time",)
    finishing = [n.kwargs["name"] for n in nodes if n.kwargs.get("on_exit") is not None]
    assert finishing == ["sim_bridge"], "the launch ends when the bridge has run its episodes"


def test_launch_and_config_files_are_installed_into_share(monkeypatch):
    """colcon/pip install data_files: share/tdm_control/{launch,config}, where FindPackageShare looks."""
    tree = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "data_files"]
    namespace = {"glob": glob, "os": os, "PACKAGE": "tdm_control"}
    exec(compile(ast.Module(body=[function], type_ignores=[]), "setup.py", "exec"), namespace)
    monkeypatch.chdir(ROOT)
    installed = {folder: files for folder, files in namespace["data_files"]()}
    for path in LAUNCH_FILES:
        assert f"launch/{os.path.basename(path)}" in installed["share/tdm_control/launch"]
    assert {"config/cartpole.yaml", "config/walker.yaml"} <= set(installed["share/tdm_control/config"])
    assert installed["share/ament_index/resource_index/packages"] == ["resource/tdm_control"]
