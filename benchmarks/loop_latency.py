"""Loop latency of the closed loop over DDS: state published -> command received, planning excluded.

    python benchmarks/loop_latency.py [--steps 1000] [--episodes 3]

Runs the real bridge node (lockstep, cartpole) as a process and measures, per
step, the time from the bridge first publishing a joint state to the bridge
receiving the command that answers it (the bridge records it). Two planners:

* responder: this script answers each new state at once with a zero command
  (embedded transport, no planning): the transport's own round trip.
* planner_node: the real planner node as a process (ground-truth model, K=1,
  N=1); its planning time for each state, published on ~/planning_info, is
  subtracted, leaving message conversion, checks and DDS.

State throughput is answered states per second of episode wall time: how fast
the lockstep loop runs when planning costs nothing.

Both are measured twice in one run (`--graph both`, the default): with the nodes
out of the ROS 2 graph (TDM_ROS_GRAPH=off: topics only, as before issue 20) and
in it (on: ros_discovery_info, /rosout, parameter services), so the cost of the
graph's traffic is read off one table, on one machine, under one load.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every node of the benchmark runs on this machine: discovery on loopback, nothing sent to the network,
# unless the caller chose a range.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
sys.path.insert(0, ROOT)

from tdm_control.ros import messages as m  # noqa: E402
from tdm_control.ros.graph import GRAPH_ENV  # noqa: E402
from tdm_control.ros.params import write_params_file  # noqa: E402
from tdm_control.ros.transport import COMMANDS, LATEST_SENSOR_DATA, QoS, make_node  # noqa: E402

CONFIG = os.path.join(ROOT, "config", "cartpole.yaml")
DEADLINE_S = 600.0
"""Longest one run may take before the benchmark gives up."""


CHILDREN: list[subprocess.Popen] = []
"""Every node process started, waited for before their folder is removed."""


def start(module: str, params_file: str, overrides: dict, folder: str) -> subprocess.Popen:
    path = os.path.join(folder, f"{module}.yaml")
    write_params_file(path, overrides)
    process = subprocess.Popen([sys.executable, "-m", module, "--ros-args", "--params-file", params_file,
                                "--params-file", path], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, MUJOCO_GL="disable"))
    CHILDREN.append(process)
    return process


def stop_children() -> None:
    """Waits up to 10 s for each node process still running (after Ctrl-C they are ending), then kills it."""
    for process in CHILDREN:
        if process.poll() is None:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def finish(process: subprocess.Popen, name: str) -> None:
    try:
        code = process.wait(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        raise SystemExit(f"{name} did not finish within {DEADLINE_S} s") from None
    if code != 0:
        raise SystemExit(f"{name} failed ({code}):\n{process.stderr.read()}")


def bridge_overrides(steps: int, episodes: int, result: str) -> dict:
    return {"sim_bridge": {"steps": steps, "episodes": episodes, "progress_period": 0, "result_path": result,
                           "use_sim_time": False},
            "planner_node": {"use_sim_time": False}}


def spin_once(node) -> None:
    """One 50 ms spin; KeyboardInterrupt once Ctrl-C has asked the node to stop.

    Nodes from `make_node` take the first Ctrl-C as a request (an exception raised inside
    cyclonedds' take can crash the process), so the loops here check for it themselves.
    """
    if node.interrupted:
        raise KeyboardInterrupt
    node.spin_once(0.05)


def spin_until_exit(node, process: subprocess.Popen) -> None:
    """Spins `node` until `process` has exited; KeyboardInterrupt if Ctrl-C (which ends the child too) came."""
    while process.poll() is None:
        spin_once(node)
    if node.interrupted:
        raise KeyboardInterrupt


def run_with_responder(steps: int, episodes: int, folder: str) -> dict:
    """The bridge against a zero-time responder in this process."""
    node = make_node("responder", [], transport="embedded")
    commands = node.create_publisher(m.Float64MultiArray, "/effort_controller/commands", COMMANDS)
    answered: set[tuple[int, int]] = set()
    episode = [-1]

    def on_state(state: m.JointState) -> None:
        key = (episode[0], state.header.stamp.to_ns())
        if episode[0] >= 0 and key not in answered:  # each state once, as the planner node does
            answered.add(key)
            commands.publish(m.Float64MultiArray(data=[0.0]))

    node.create_subscription(m.JointState, "/joint_states", on_state, LATEST_SENSOR_DATA)
    node.create_subscription(m.Int32, "/sim_bridge/episode", lambda e: episode.__setitem__(0, e.data),
                             QoS(reliable=True, transient_local=True, depth=1))
    result = os.path.join(folder, "responder.json")
    bridge = start("sim_bridge.bridge_node", CONFIG, bridge_overrides(steps, episodes, result), folder)
    spin_until_exit(node, bridge)
    node.close()
    finish(bridge, "sim_bridge")
    with open(result) as f:
        return json.load(f)


def run_with_planner_node(steps: int, episodes: int, folder: str) -> tuple[dict, dict]:
    """The bridge against the real planner node (K=1, N=1); returns the bridge summary and stamp -> planning s."""
    node = make_node("monitor", [], transport="embedded")
    planning: dict[tuple[int, float], float] = {}
    episode = [0]
    info_sub = node.create_subscription(
        m.Float64MultiArray, "/planner_node/planning_info",
        lambda i: planning.__setitem__((episode[0], round(i.data[0], 6)), i.data[1]), QoS(depth=1000))
    node.create_subscription(m.Int32, "/sim_bridge/episode", lambda e: episode.__setitem__(0, e.data),
                             QoS(reliable=True, transient_local=True, depth=1))
    planner = start("tdm_control.nodes.planner_node", CONFIG, {"planner_node": {
        "model": "mujoco", "planner_params": {"samples": 1, "horizon": 1}, "use_sim_time": False}}, folder)
    deadline = time.monotonic() + DEADLINE_S
    while info_sub.publisher_count == 0:  # every planning_info must reach this monitor
        spin_once(node)
        if time.monotonic() > deadline or planner.poll() is not None:
            raise SystemExit("the planner node did not come up")
    result = os.path.join(folder, "planner.json")
    bridge = start("sim_bridge.bridge_node", CONFIG, bridge_overrides(steps, episodes, result), folder)
    spin_until_exit(node, bridge)
    finish(bridge, "sim_bridge")
    node.spin_once(0.1)
    planner.terminate()
    planner.wait()
    node.close()
    with open(result) as f:
        return json.load(f), planning


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def describe(name: str, graph: str, waits: np.ndarray, summary: dict) -> str:
    throughput = summary["answered_states"] / sum(summary["episode_wall_s"])
    return (f"{name:<13} {graph:>5} {waits.size:>6} {1e3 * np.median(waits):>10.3f} "
            f"{1e3 * np.percentile(waits, 99):>9.3f} {1e3 * waits.max():>9.3f} {throughput:>11.0f}")


def measure(args: argparse.Namespace, graph: str) -> list[str]:
    """The table rows of one setting of TDM_ROS_GRAPH ('on' or 'off'), for this process and the node processes."""
    os.environ[GRAPH_ENV] = graph
    with tempfile.TemporaryDirectory() as folder:
        try:
            responder = run_with_responder(args.steps, args.episodes, folder)
            bridge, planning = run_with_planner_node(args.steps, args.episodes, folder)
        finally:
            stop_children()
    step_s = 0.01
    raw = np.asarray(bridge["answer_waits_s"])
    stamps = [(e, round(t * step_s, 6)) for e in range(args.episodes) for t in range(args.steps)]
    missing = [s for s in stamps if s not in planning]
    if missing:
        raise SystemExit(f"planning_info missing for {len(missing)} states, e.g. {missing[:3]}")
    planned = np.asarray([planning[s] for s in stamps])
    return [describe("responder", graph, np.asarray(responder["answer_waits_s"]), responder),
            describe("planner_node", graph, raw - planned, bridge),
            f"  (graph {graph}: planner_node planning time itself: median {1e3 * np.median(planned):.3f} ms; "
            f"its loop including planning: median {1e3 * np.median(raw):.3f} ms)"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="steps per episode (at most 1000)")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--graph", choices=("both", "off", "on"), default="both",
                        help="TDM_ROS_GRAPH settings to measure: off (topics only), on (full ROS 2 node), or both")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random().randint(1, 200)))  # a domain of its own
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs ({cpu_model()}), "
          f"Python {platform.python_version()}, cyclonedds {importlib.metadata.version('cyclonedds')}")
    print(f"load average before the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"bridge: cartpole_swingup lockstep, {args.episodes} episode(s) x {args.steps} steps, "
          f"embedded transport, ROS_DOMAIN_ID {os.environ['ROS_DOMAIN_ID']}")
    rows = []
    for graph in (("off", "on") if args.graph == "both" else (args.graph,)):
        rows += measure(args, graph)
    print()
    print("state published -> command received, planning excluded (ms); throughput in states/s")
    print(f"{'planner':<13} {'graph':>5} {'states':>6} {'median':>10} {'p99':>9} {'max':>9} {'throughput':>11}")
    for row in rows:
        print(row)
    print("(graph: TDM_ROS_GRAPH, off = topics only, on = a full ROS 2 node with discovery info, /rosout and "
          "parameter services)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted: no result")
