"""The tree shows the architecture: which part may import which, read from the source files."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("tdm_control", "sim_bridge", "training")


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function, absolute or relative."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def unit(module: str) -> str | None:
    """The part of the project a module belongs to: a subpackage of tdm_control (tdm_control.planning),
    one of its top-level modules (tdm_control.controller), or a whole top-level package."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    if parts[0] == "tdm_control" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def source_files() -> list[pathlib.Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def modules_of_project() -> set[str]:
    return {module_name(p) for p in source_files()}


def edges(level) -> dict[str, set[str]]:
    known = modules_of_project()
    graph: dict[str, set[str]] = {}
    for path in source_files():
        source = level(module_name(path))
        for target in imports(path):
            if target in known or target.rpartition(".")[0] in known:
                other = level(target if target in known else target.rpartition(".")[0])
                if other and other != source:
                    graph.setdefault(source, set()).add(other)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize("level", [lambda m: m.split(".")[0], unit], ids=["packages", "subpackages"])
def test_no_import_cycle(level):
    cycle = find_cycle(edges(level))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_the_runtime_imports_no_torch_and_no_training_code():
    for path in (ROOT / "tdm_control").rglob("*.py"):
        bad = {m for m in imports(path) if m.split(".")[0] in ("torch", "training", "sim_bridge")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("core", ["tdm_control/nodes/planner_core.py", "tdm_control/nodes/joints.py",
                                  "tdm_control/nodes/async_core.py", "tdm_control/nodes/trajectory.py",
                                  "sim_bridge/bridge_core.py", "tdm_control/controller.py"])
def test_node_cores_import_no_ros(core):
    bad = {m for m in imports(ROOT / core)
           if m.split(".")[0] in ("rclpy", "cyclonedds", "launch", "launch_ros") or m.startswith("tdm_control.ros")}
    assert not bad, f"{core} imports {sorted(bad)}: the core of a node must run without ROS"
