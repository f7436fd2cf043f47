"""`tdm-control launch`: the closed loop without ROS 2 launch, as separate processes.

    tdm-control launch config/cartpole.yaml
    tdm-control launch config/cartpole.yaml --steps 200 --set planner_node.planner_params.samples=16

Starts the same nodes as the launch files `launch/cartpole.launch.py` and
`launch/walker.launch.py` (the simulation bridge and the planner), each in its
own process with the same parameters, over the transport chosen as the nodes
choose it (the embedded Cyclone DDS one where rclpy is absent). Their logs are
streamed with a `[node]` prefix. When one node exits (the bridge does after its
episodes) the others are stopped; Ctrl-C stops all: SIGINT, then SIGTERM and
SIGKILL after `--stop-timeout` seconds each.

Exit status: 0 when the first node to exit succeeded and the rest stopped
cleanly, that node's status (or 1) when it failed, 130 after Ctrl-C, 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Sequence

import yaml

from tdm_control.config import ConfigError
from tdm_control.ros.params import node_parameters, parse_ros_args, write_params_file
from tdm_control.ros.transport import TRANSPORT_ENV, TRANSPORTS, handle_ctrl_c


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    name: str
    """ROS node name (the key of its section in the params file)."""
    module: str
    """Python module with the node's main(), run as `python -m module`."""
    executable: str
    """Console script for `ros2 run tdm_control <executable>` (launch files use it)."""


NODES = (
    NodeSpec("sim_bridge", "sim_bridge.bridge_node", "sim_bridge"),
    NodeSpec("planner_node", "tdm_control.nodes.planner_node", "planner_node"),
)
"""The closed loop; the launch files in launch/ start the same nodes (a test checks they agree)."""
STOP_TIMEOUT_S = 5.0
"""Default seconds a node gets to exit after SIGINT, and again after SIGTERM, before the next signal."""
POLL_S = 0.1
"""Seconds between checks of the nodes' status."""
INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""
EXECUTION_FOR_MODE = {"lockstep": "lockstep", "realtime": "async"}
"""--mode sets the bridge's mode and the planner's execution: a realtime robot does not wait for a plan."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("params_file", help="ros__parameters YAML for both nodes, e.g. config/cartpole.yaml")
    parser.add_argument("--episodes", type=int, help="episodes the bridge runs (sim_bridge.episodes)")
    parser.add_argument("--steps", type=int, help="steps per episode (sim_bridge.steps)")
    parser.add_argument("--mode", choices=list(EXECUTION_FOR_MODE),
                        help="sim_bridge.mode; also planner_node.execution (realtime: async, lockstep: lockstep) "
                             "unless --set gives it")
    parser.add_argument("--seed", type=int, help="seed of both nodes")
    parser.add_argument("--model", help="planner_node.model: 'mujoco' or the path of an .onnx model")
    parser.add_argument("--result", help="the bridge writes its JSON summary here (sim_bridge.result_path)")
    parser.add_argument("--record", metavar="BAG",
                        help="record every topic of the loop to this new rosbag2 folder (sim_bridge.record)")
    parser.add_argument("--record-storage", choices=("mcap", "sqlite3"),
                        help="the bag's storage (sim_bridge.record_storage; default mcap, as ROS 2 Jazzy)")
    parser.add_argument("--video", metavar="FILE",
                        help="film the episodes offscreen into FILE, .mp4 or .gif (sim_bridge.video)")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                        help="any parameter, e.g. planner_node.planner_params.samples=16 (NODE '**' for all)")
    parser.add_argument("--transport", choices=TRANSPORTS, help=f"force a transport (sets {TRANSPORT_ENV})")
    parser.add_argument("--stop-timeout", type=float, default=STOP_TIMEOUT_S,
                        help="seconds a node gets to exit after SIGINT (and after SIGTERM)")


def overrides_from(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Node name -> parameter -> value, from the command line's shortcuts and --set."""
    names = [n.name for n in NODES]
    out: dict[str, dict[str, Any]] = {name: {} for name in names}
    shortcuts = {("sim_bridge", "episodes"): args.episodes, ("sim_bridge", "steps"): args.steps,
                 ("sim_bridge", "mode"): args.mode, ("planner_node", "model"): args.model,
                 ("planner_node", "execution"): args.mode and EXECUTION_FOR_MODE[args.mode],
                 ("sim_bridge", "result_path"): args.result,
                 ("sim_bridge", "record"): args.record and os.path.abspath(args.record),
                 ("sim_bridge", "record_storage"): args.record_storage,
                 ("sim_bridge", "video"): args.video and os.path.abspath(args.video),
                 ("sim_bridge", "seed"): args.seed, ("planner_node", "seed"): args.seed}
    for (node, key), value in shortcuts.items():
        if value is not None:
            out[node][key] = value
    for item in args.set:
        target, sep, text = item.partition("=")
        node, dot, key = target.partition(".")
        if not sep or not dot or not key:
            raise ConfigError(f"--set {item!r}: expected NODE.PARAM=VALUE")
        if node not in names and node not in ("**", "/**"):
            raise ConfigError(f"--set {item!r}: unknown node {node!r}; nodes: {', '.join(names)}, or ** for all")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
        for name in (names if node in ("**", "/**") else [node]):
            out[name][key] = value
    return {node: values for node, values in out.items() if values}


try:
    _LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None
except OSError:  # pragma: no cover
    _LIBC = None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the node gets SIGTERM if the launcher dies without stopping it (e.g. SIGKILL)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Launcher:
    """Runs the nodes as child processes and streams their logs."""

    def __init__(self, params_files: Sequence[str], transport: str | None, stop_timeout: float,
                 out=None) -> None:
        self.params_files = list(params_files)
        self.transport = transport
        self.stop_timeout = stop_timeout
        self.out = out or sys.stdout
        self.processes: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._streams: list[threading.Thread] = []

    def say(self, text: str, prefix: str = "launch") -> None:
        with self._lock:
            self.out.write(f"[{prefix}] {text}")
            if not text.endswith("\n"):
                self.out.write("\n")
            self.out.flush()

    def _stream(self, name: str, pipe) -> None:
        for line in iter(pipe.readline, ""):
            self.say(line, name)
        pipe.close()

    def start(self) -> None:
        # The launched loop lives on this machine: its nodes discover each other on loopback unless the
        # user chose a range (ROS 2 Jazzy's default, SUBNET, would also announce them on the network).
        env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", **os.environ, "PYTHONUNBUFFERED": "1"}
        if self.transport:
            env[TRANSPORT_ENV] = self.transport
        ros_args = ["--ros-args"] + [a for f in self.params_files for a in ("--params-file", f)]
        for spec in NODES:
            # Own session: a terminal's Ctrl-C reaches the launcher only, which then stops each node once.
            # All children are forked before any log thread starts (preexec_fn and threads do not mix).
            self.processes[spec.name] = subprocess.Popen(
                [sys.executable, "-m", spec.module, *ros_args], env=env, text=True, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, bufsize=1, start_new_session=True, preexec_fn=_die_with_parent)
        for spec in NODES:
            process = self.processes[spec.name]
            thread = threading.Thread(target=self._stream, args=(spec.name, process.stdout), daemon=True)
            thread.start()
            self._streams.append(thread)
            self.say(f"started {spec.name} (pid {process.pid}): python -m {spec.module} {' '.join(ros_args)}")

    def wait_first_exit(self) -> tuple[str, int]:
        """Blocks until a node exits; returns its name and exit status."""
        while True:
            for name, process in self.processes.items():
                code = process.poll()
                if code is not None:
                    return name, code
            time.sleep(POLL_S)

    def stop(self) -> bool:
        """Stops every running node (SIGINT, then SIGTERM, then SIGKILL); True if none needed SIGKILL."""
        clean = True
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            running = {n: p for n, p in self.processes.items() if p.poll() is None}
            if not running:
                break
            if sig != signal.SIGINT:
                self.say(f"{', '.join(running)} still running after {self.stop_timeout} s: sending {sig.name}")
                clean = clean and sig != signal.SIGKILL
            for process in running.values():
                process.send_signal(sig)
            deadline = time.monotonic() + self.stop_timeout
            while time.monotonic() < deadline and any(p.poll() is None for p in running.values()):
                time.sleep(POLL_S / 2)
        for thread in self._streams:
            thread.join(timeout=self.stop_timeout)
        return clean

    def report_exits(self, but: str | None = None) -> None:
        """Says how each stopped node (all but `but`) exited: its status, or the signal that ended it."""
        for name, process in self.processes.items():
            if name != but and process.returncode is not None:
                code = process.returncode
                how = f"status {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
                self.say(f"{name} exited with {how}")

    def run(self) -> int:
        """Starts the nodes, waits for one to exit or for Ctrl-C, stops the rest; returns the exit status."""
        try:
            self.start()
            name, code = self.wait_first_exit()
        except KeyboardInterrupt:
            self.say("Ctrl-C: stopping the nodes")
            self.stop()
            self.report_exits()
            return INTERRUPTED
        if code == 0:
            self.say(f"{name} finished; stopping the other nodes")
        else:
            self.say(f"{name} died (exit status {code}); stopping the other nodes")
        try:
            clean = self.stop()
        except KeyboardInterrupt:
            self.stop()
            return INTERRUPTED
        self.report_exits(but=name)
        if code != 0:
            return code if code > 0 else 1
        return 0 if clean else 1


def print_returns(path: str, say) -> None:
    """Prints the episode returns from the bridge's result file, if it wrote one."""
    try:
        with open(path) as f:
            returns = json.load(f)["returns"]
    except (OSError, ValueError, KeyError):
        return
    if returns:
        say(f"episode returns: {', '.join(f'{r:.3f}' for r in returns)}"
            + (f" (mean {sum(returns) / len(returns):.3f})" if len(returns) > 1 else ""))


def main(args: argparse.Namespace) -> int:
    """Runs `tdm-control launch` with parsed arguments."""
    handle_ctrl_c()
    if not os.path.isfile(args.params_file):
        raise ConfigError(f"parameter file {args.params_file!r} does not exist")
    file_params = node_parameters(parse_ros_args(["--ros-args", "--params-file", args.params_file]), "/sim_bridge")
    overrides = overrides_from(args)
    with tempfile.TemporaryDirectory(prefix="tdm-launch-") as folder:
        # The bridge always writes its summary somewhere, so the returns can be printed at the end.
        result = overrides.get("sim_bridge", {}).get("result_path") or file_params.get("result_path") \
            or os.path.join(folder, "result.json")
        overrides.setdefault("sim_bridge", {})["result_path"] = result
        # Node-specific entries in a later file override the params file, as `ros2 launch`
        # parameters do (a plain `-p` would lose to the file's node-specific entries).
        path = os.path.join(folder, "overrides.yaml")
        write_params_file(path, overrides)
        launcher = Launcher([os.path.abspath(args.params_file), path], args.transport, args.stop_timeout)
        code = launcher.run()
        print_returns(result, launcher.say)
        return code
