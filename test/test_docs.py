"""The docs tell the truth about the tree: their links, paths and commands exist and parse.

For README.md, docs/*.md, EVALUATION.md, BENCHMARKS.md, experiments/walker/README.md and experiments/bags/README.md:

- every relative markdown link and image target exists;
- every repository path in backticks or in a shell command (config/..., models/..., ...) exists
  (results/, runs/ and data/ are outputs and not checked);
- every `tdm-control` / `tdm-train` command in a code block parses with the real argparse parser,
  its configs load, and its planner keys and `--set` parameters exist; `bash scripts/...`,
  `ros2 launch` and `ros2 run` name a script, launch file, launch argument or executable that exists.

Shell commands are the lines of ```bash / ```sh blocks and, in other blocks, the lines that start
with `$ ` (a command shown with its output). Nothing is run: the checks read files and build configs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import importlib.util
import io
import os
import pathlib
import re
import shlex

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = sorted(
    [ROOT / "README.md", ROOT / "EVALUATION.md", ROOT / "BENCHMARKS.md", ROOT / "experiments/walker/README.md",
     ROOT / "experiments/bags/README.md"]
    + list((ROOT / "docs").glob("*.md")))
PATH_ROOTS = ("config", "models", "launch", "scripts", "docs", "experiments", "benchmarks", "tdm_control",
              "training", "sim_bridge", "test")
PATH = re.compile(r"(?<![\w./~$-])((?:" + "|".join(PATH_ROOTS) + r")/[\w./*<>-]*)")
"""A repository path: starts with a top-level folder, not in the middle of another path or word."""
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
TDM_CONTROL = ("tdm-control", ".venv/bin/tdm-control")
TDM_TRAIN = ("tdm-train", ".venv/bin/tdm-train")


def split_markdown(text: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """(the prose outside code blocks, [(language, lines) of each fenced block])."""
    prose, blocks, block = [], [], None
    for line in text.splitlines():
        fence = FENCE.match(line.strip())
        if block is None and fence:
            block = (fence.group(1), [])
        elif block is not None and line.strip() == "```":
            blocks.append(block)
            block = None
        elif block is not None:
            block[1].append(line)
        else:
            prose.append(line)
    assert block is None, "a code block is not closed"
    return "\n".join(prose), blocks


def shell_commands(blocks: list[tuple[str, list[str]]]) -> list[str]:
    """The shell commands of the code blocks, continuation lines joined."""
    commands = []
    for language, lines in blocks:
        shell = language in SHELL_LANGUAGES
        current = None
        for line in lines:
            if current is not None:
                current += " " + line.strip()
            elif shell and line.strip() and not line.lstrip().startswith("#"):
                current = line.strip()
            elif not shell and line.startswith("$ "):
                current = line[2:].strip()
            else:
                continue
            if current.endswith("\\"):
                current = current[:-1].rstrip()
            else:
                commands.append(current)
                current = None
        if current is not None:
            commands.append(current)
    return commands


def path_problems(text: str) -> list[str]:
    """Repository paths in `text` that do not exist (placeholders like <task> and '...' are skipped)."""
    problems = []
    for match in PATH.finditer(text):
        path = match.group(1).rstrip(".,:;")
        if "<" in path or ">" in path or "..." in path:
            continue
        if "*" in path:
            if not glob.glob(str(ROOT / path)):
                problems.append(f"{path}: matches no file")
        elif not (ROOT / path).exists():
            problems.append(f"{path}: no such file or folder")
    return problems


def link_problems(prose: str, folder: pathlib.Path) -> list[str]:
    problems = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        if not (folder / target.split("#", 1)[0]).exists():
            problems.append(f"link {target}: no such file")
    return problems


def _parse(parser: argparse.ArgumentParser, args: list[str]) -> argparse.Namespace:
    """parse_args, with argparse's complaint as a ValueError instead of an exit."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return parser.parse_args(args)
    except SystemExit as e:
        message = stderr.getvalue().strip().splitlines()
        raise ValueError(message[-1] if message else f"exit {e}") from None


def _repo_file(path: str) -> bool:
    """Whether `path` is meant to be a file of this repository (not /tmp/..., not an output)."""
    return not os.path.isabs(path) and not path.startswith(("results/", "runs/", "data/"))


def _planner_keys(planner: str, args: argparse.Namespace) -> None:
    from tdm_control.planning import planner_config

    params = dict(args.set)
    for key in ("samples", "horizon", "noise_variance"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    planner_config(planner, params)


def _launch_parameters(args: argparse.Namespace) -> None:
    """Builds both nodes' configs from the params file and the command line, as the nodes do."""
    from sim_bridge.bridge_core import BridgeConfig
    from tdm_control.nodes.planner_core import PlannerNodeConfig
    from tdm_control.planning import planner_config
    from tdm_control.ros.launcher import overrides_from
    from tdm_control.ros.params import WILDCARD, config_from_parameters, read_params_file

    file_params = read_params_file(str(ROOT / args.params_file))
    overrides = overrides_from(args)
    for node, cls in (("sim_bridge", BridgeConfig), ("planner_node", PlannerNodeConfig)):
        params = {**file_params.get(WILDCARD, {}), **file_params.get(f"/{node}", {}), **overrides.get(node, {})}
        config = config_from_parameters(cls, params)
        if node == "planner_node":
            planner_config(config.planner, config.planner_params)


def check_tdm_control(args: list[str]) -> None:
    from tdm_control.cli import build_parser

    ns = _parse(build_parser(), args)
    if ns.command in ("eval", "audit"):
        _planner_keys(ns.planner, ns)
    elif ns.command == "grid":
        _check_grid(ns.spec)
    elif ns.command == "launch":
        _launch_parameters(ns)


def check_tdm_train(args: list[str]) -> None:
    from training.cli import build_parser

    ns = _parse(build_parser(), args)
    if getattr(ns, "config", None) and _repo_file(ns.config):  # import-bag takes --task, not --config
        _check_pipeline(ns.config)


@functools.lru_cache(maxsize=None)
def _check_pipeline(config: str) -> None:
    from training.pipeline import load_pipeline

    load_pipeline(str(ROOT / config))


@functools.lru_cache(maxsize=None)
def _check_grid(spec: str) -> None:
    """Loads a grid spec and builds the planner config of every run, as `tdm-control grid` does first."""
    from tdm_control.evaluation.grid import expand, load_grid
    from tdm_control.planning import planner_config

    for run in expand(load_grid(str(ROOT / spec))):
        planner_config(run["planner"], run["planner_params"])


def _demo_launch_arguments() -> list[str]:
    """What scripts/demo.sh passes to `tdm-control` before its own extra arguments."""
    for line in (ROOT / "scripts/demo.sh").read_text().splitlines():
        if "bin/tdm-control " in line and '"$@"' in line:
            return shlex.split(line.split("bin/tdm-control ", 1)[1].split('"$@"', 1)[0])
    raise AssertionError("scripts/demo.sh no longer ends in `.../bin/tdm-control ... \"$@\"`")


def check_segment(words: list[str]) -> None:
    """Checks one simple command (no &&, ;, |). Raises with what is wrong."""
    if not words:
        return
    program, args = words[0], words[1:]
    if program in TDM_CONTROL:
        check_tdm_control(args)
    elif program in TDM_TRAIN:
        check_tdm_train(args)
    elif program == "bash" and args and args[0].startswith("scripts/"):
        if not (ROOT / args[0]).is_file():
            raise ValueError(f"{args[0]}: no such script")
        if args[0] == "scripts/demo.sh":
            check_tdm_control(_demo_launch_arguments() + args[1:])
    elif program == "ros2" and args[:1] == ["launch"]:
        package, launch_file, *launch_args = args[1:]
        if package != "tdm_control" or not (ROOT / "launch" / launch_file).is_file():
            raise ValueError(f"ros2 launch {package} {launch_file}: no such launch file")
        declared = re.findall(r'DeclareLaunchArgument\(\s*"(\w+)"',
                              (ROOT / "tdm_control/ros/launch_description.py").read_text())
        for item in launch_args:
            name = item.split(":=", 1)[0]
            if ":=" not in item or name not in declared:
                raise ValueError(f"launch argument {item!r}: the launch files declare {declared}")
    elif program == "ros2" and args[:1] == ["run"]:
        from tdm_control.ros.launcher import NODES

        if args[1] != "tdm_control" or args[2] not in {n.executable for n in NODES}:
            raise ValueError(f"ros2 run {args[1]} {args[2]}: no such executable")
    elif program.endswith("python") and args[:1] == ["-m"]:
        if importlib.util.find_spec(args[1]) is None:
            raise ValueError(f"python -m {args[1]}: no such module")


def command_problems(command: str) -> list[str]:
    """What is wrong with one shell command line of the docs (empty: nothing found)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError as e:
        return [f"{command}: {e}"]
    segments, current = [], []
    for word in words:
        if word in ("&&", "||", ";", "|"):
            segments.append(current)
            current = []
        else:
            current.append(word)
    segments.append(current)
    problems = []
    for segment in segments:
        try:
            check_segment(segment)
        except Exception as e:  # any failure is the finding, reported with its command
            problems.append(f"{command}: {type(e).__name__}: {e}")
    return problems


def doc_id(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_links_and_images_exist(doc):
    prose, _ = split_markdown(doc.read_text())
    assert link_problems(prose, doc.parent) == []


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_paths_in_backticks_and_commands_exist(doc):
    prose, blocks = split_markdown(doc.read_text())
    spans = re.findall(r"`([^`\n]+)`", prose)
    problems = [p for span in spans for p in path_problems(span)]
    problems += [p for command in shell_commands(blocks) for p in path_problems(command)]
    assert problems == []


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_commands_parse_with_the_real_parsers(doc):
    _, blocks = split_markdown(doc.read_text())
    assert [p for command in shell_commands(blocks) for p in command_problems(command)] == []


def test_the_docs_have_commands_to_check():
    readme = shell_commands(split_markdown((ROOT / "README.md").read_text())[1])
    assert [shlex.split(c, comments=True) for c in readme[:2]] == [["bash", "scripts/demo.sh"],
                                                                   ["bash", "scripts/test.sh"]]
    every = [c for doc in DOCS for c in shell_commands(split_markdown(doc.read_text())[1])]
    assert sum(c.split()[0] in TDM_CONTROL for c in every) >= 20
    assert sum(c.split()[0] in TDM_TRAIN for c in every) >= 5


@pytest.mark.parametrize("command", [
    "tdm-control eval --planner warm_start --samplez 64",                      # no such flag
    "tdm-control eval --planner warm_start --set warm_varience=0.03",         # no such planner key
    "tdm-control eval --planner warm_stat",                                   # no such planner
    "tdm-control grid config/eval/no_such_grid.yaml",                         # no such spec
    "tdm-control launch config/cartpole.yaml --set planner_node.planner_params.samplez=64",
    "tdm-control launch config/cartpole.yaml --set sim_bridge.stpes=200",
    "tdm-train all --config config/training/no_such.yaml",
    "tdm-train fit --config config/training/cartpole_swingup.yaml --max-stpes 10",
    "bash scripts/demo.sh --stpes 200",
    "bash scripts/no_such.sh",
    "ros2 launch tdm_control cartpole.launch.py param_file:=my.yaml",
    "ros2 run tdm_control planner",
])
def test_a_broken_command_is_rejected(command):
    assert command_problems(command) != []


def test_a_missing_path_or_link_is_rejected(tmp_path):
    assert path_problems("see `models/no_such_model.onnx` and config/eval/*.nothing") != []
    assert path_problems("models/cartpole_swingup_tdm.onnx+models/walker_stand_tdm_v3.onnx") == []
    assert link_problems("![plot](figures/no_such.png)", ROOT / "docs") != []
    assert link_problems("[ros](ros.md) and [web](https://example.org)", ROOT / "docs") == []
