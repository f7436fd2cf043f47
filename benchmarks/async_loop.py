"""Planning beside control in real time: does the executor keep time while plans run, and what does it earn?

    python benchmarks/async_loop.py                            # ground truth and shipped TDM, 1 and 2 threads
    python benchmarks/async_loop.py --models mujoco --threads 1 --episodes 1 --steps 300

Runs the real bridge (cartpole, realtime, speed factor 1.0) and the real planner node
(`execution: async`, config/cartpole.yaml's planner settings, `use_sim_time`) as
processes, once per model and per `threads` value (the model's threads per call,
PlannerNodeConfig.threads), and reports for each run:

* on time: the share of simulation steps whose command was published within one
  control step of the state: for each /clock message (the bridge sends one per
  step, with the state), the executor's tick for that time must be published
  (its ~/execution_info message, sent right after the command) less than one
  control step after it. Both times are the DDS source timestamps of the two
  messages (system clock at publication), so this monitor's own scheduling does
  not enter. A tick that never came (the node fell behind and skipped it) is late.
  The delays themselves (ms) are shown as p50 and p99 (inf: a tick missed).
* command age p50 / p99 (s): per tick that played a plan, the time since the
  state that plan started from (~/execution_info: tick time - plan stamp).
* zero: the share of ticks that sent zero torque (no plan yet, expired, failed).
* replans/s: new plans (~/planning_info) per second of episode wall time, and
  their median planning latency (s, wall clock).
* the episode returns, from the bridge.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every node of the benchmark runs on this machine: discovery on loopback, nothing sent to the network,
# unless the caller chose a range.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
sys.path.insert(0, ROOT)

from loop_latency import CONFIG, DEADLINE_S, cpu_model, finish, start, stop_children  # noqa: E402

from tdm_control.ros import messages as m  # noqa: E402
from tdm_control.ros.embedded import EmbeddedNode, dds_qos, idl_type  # noqa: E402
from tdm_control.ros.transport import QoS  # noqa: E402

TDM = "models/cartpole_swingup_tdm.onnx"
CONTROL_NS = 10_000_000
"""cartpole's control timestep (ns): at speed factor 1.0 also the wall time between two bridge steps."""
STATUS_OK = 0.0
"""~/execution_info status of a tick that played a plan (tdm_control.nodes.async_core.STATUSES)."""


class Monitor:
    """Raw DDS readers (for the source timestamps) on /clock and the planner's diagnostics."""

    TOPICS = {"clock": ("/clock", m.Clock), "ticks": ("/planner_node/execution_info", m.Float64MultiArray),
              "plans": ("/planner_node/planning_info", m.Float64MultiArray)}

    def __init__(self) -> None:
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        self._node = EmbeddedNode("async_loop_monitor", [])  # opens the domain with the nodes' discovery settings
        self._participant = DomainParticipant(self._node.domain_id)
        qos = dds_qos(QoS(reliable=False, depth=100_000))  # best effort matches every writer
        self.readers = {name: DataReader(self._participant, Topic(self._participant, "rt" + topic, idl_type(t)), qos)
                        for name, (topic, t) in self.TOPICS.items()}
        self.samples: dict[str, list[tuple[int, object]]] = {name: [] for name in self.TOPICS}

    def planner_is_up(self) -> bool:
        return bool(self.readers["ticks"].get_matched_publications())

    def take(self) -> None:
        for name, reader in self.readers.items():
            while True:
                samples = reader.take(N=1000)
                self.samples[name].extend((s.sample_info.source_timestamp, s) for s in samples
                                          if s.sample_info.valid_data)
                if len(samples) < 1000:
                    break

    def close(self) -> None:
        self._participant.__del__()
        self._node.close()


def by_episode(times_ns: list[int]) -> list[tuple[int, int]]:
    """(episode, time) for a stream of simulation times: the clock going back starts the next episode."""
    out, episode, last = [], 0, None
    for t in times_ns:
        if last is not None and t < last:
            episode += 1
        out.append((episode, t))
        last = t
    return out


def measure(model: str, threads: int, args: argparse.Namespace, folder: str) -> dict:
    """One run: the planner node with `model` and `threads`, then the bridge; returns the figures."""
    planner_params = {key: value for key, value in (("samples", args.samples), ("horizon", args.horizon)) if value}
    monitor = Monitor()
    planner = start("tdm_control.nodes.planner_node", CONFIG, {"planner_node": {
        "model": model, "execution": "async", "threads": threads, "use_sim_time": True,
        "action_repeat": args.action_repeat,
        "planner_params": planner_params}}, folder)
    result_path = os.path.join(folder, "bridge.json")
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not monitor.planner_is_up():  # up once the model is loaded and its publishers exist
            if planner.poll() is not None:
                raise SystemExit(f"the planner node exited ({planner.returncode}):\n{planner.stderr.read()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"the planner node did not come up within {DEADLINE_S} s")
            time.sleep(0.05)
        bridge = start("sim_bridge.bridge_node", CONFIG, {"sim_bridge": {
            "mode": "realtime", "speed_factor": 1.0, "steps": args.steps, "episodes": args.episodes,
            "progress_period": 0, "result_path": result_path, "use_sim_time": True}}, folder)
        while bridge.poll() is None:
            monitor.take()
            time.sleep(0.05)
        finish(bridge, "sim_bridge")
        time.sleep(0.2)  # the last ticks on their way
        monitor.take()
    finally:
        planner.terminate()
        planner.wait()
        monitor.close()
    with open(result_path) as f:
        bridge_summary = json.load(f)
    return figures(monitor.samples, bridge_summary)


def percentile(values: np.ndarray, q: float) -> float:
    """The q-th percentile of values (an observed value: inf for a missing tick stays inf); NaN for none."""
    return float(np.percentile(values, q, method="nearest")) if values.size else float("nan")


def figures(samples: dict, bridge: dict) -> dict:
    """The run's figures from what the monitor took and the bridge's summary."""
    clocks = sorted(samples["clock"], key=lambda s: s[0])  # (source ns, Clock)
    ticks = sorted(samples["ticks"], key=lambda s: s[0])  # (source ns, Float64MultiArray)
    clock_keys = by_episode([c.clock.sec * 1_000_000_000 + c.clock.nanosec for _, c in clocks])
    tick_keys = by_episode([round(t.data[0] * 1e9 / CONTROL_NS) * CONTROL_NS for _, t in ticks])
    published = dict(zip(tick_keys, (source for source, _ in ticks)))
    delays = np.array([published[key] - source if key in published else np.inf
                       for key, (source, _) in zip(clock_keys, clocks)]) * 1e-9  # (steps,) s; inf: no tick
    data = np.array([t.data for _, t in ticks]).reshape(-1, 3)  # (ticks, [time s, plan stamp s, status])
    ok = data[:, 2] == STATUS_OK
    ages = data[ok, 0] - data[ok, 1]  # (played ticks,) s
    latencies = np.array([p.data[1] for _, p in samples["plans"]])
    wall = sum(bridge["episode_wall_s"])
    return {"steps": len(clocks), "ticks": len(ticks),
            "on_time": float(np.mean(delays < CONTROL_NS * 1e-9)) if delays.size else float("nan"),
            "delay_p50": percentile(delays, 50), "delay_p99": percentile(delays, 99),
            "age_p50": percentile(ages, 50), "age_p99": percentile(ages, 99),
            "zero": float(np.mean(~ok)) if ok.size else float("nan"),
            "replans_per_s": latencies.size / wall if wall else float("nan"),
            "plan_latency_s": percentile(latencies, 50), "returns": bridge["returns"]}


COLUMNS = (("model", "<34", "{}"), ("threads", ">7", "{}"), ("on time", ">7", "{:.1%}"),
           ("delay p50", ">9", "{:.2f}"), ("p99", ">7", "{:.2f}"), ("age p50", ">7", "{:.3f}"),
           ("p99", ">6", "{:.3f}"), ("zero", ">6", "{:.1%}"), ("replans/s", ">9", "{:.1f}"),
           ("plan s", ">6", "{:.3f}"), ("mean return", ">11", "{:.1f}"), ("returns", "", "{}"))
"""The table: header, alignment, format of each column."""


def row(values) -> str:
    return " ".join(f"{fmt.format(v):{align}}" for (_, align, fmt), v in zip(COLUMNS, values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mujoco", TDM], help="planner_node.model values")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="planner_node.threads values")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1000, help="steps per episode (at most 1000)")
    parser.add_argument("--action-repeat", type=int, default=2,
                        help="control steps per model step (the shipped TDM's 2; the ground truth's in EVALUATION)")
    parser.add_argument("--samples", type=int, default=0, help="K; 0: config/cartpole.yaml's")
    parser.add_argument("--horizon", type=int, default=0, help="N; 0: config/cartpole.yaml's")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random().randint(1, 200)))  # a domain of its own
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs ({cpu_model()}), "
          f"Python {platform.python_version()}, cyclonedds {importlib.metadata.version('cyclonedds')}")
    print(f"load average before the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"bridge: cartpole_swingup realtime, speed factor 1.0, {args.episodes} episode(s) x {args.steps} steps; "
          f"planner: async, config/cartpole.yaml's planner, action repeat {args.action_repeat}"
          + (f" with K={args.samples}" if args.samples else "") + (f" N={args.horizon}" if args.horizon else ""))
    print()
    print(" ".join(f"{name:{align}}" for name, align, _ in COLUMNS))
    with tempfile.TemporaryDirectory() as folder:
        try:
            for model in args.models:
                for threads in args.threads:
                    r = measure(model, threads, args, folder)
                    print(row([model, threads, r["on_time"], 1e3 * r["delay_p50"], 1e3 * r["delay_p99"],
                               r["age_p50"], r["age_p99"], r["zero"], r["replans_per_s"], r["plan_latency_s"],
                               np.mean(r["returns"]), ", ".join(f"{x:.1f}" for x in r["returns"])]), flush=True)
        finally:
            stop_children()
    print("on time: ticks published within one control step (10 ms) of their state; delay: state published ->")
    print("tick published (ms; inf: no tick); age: tick time - stamp of the plan played (s); zero: ticks with zero")
    print("torque; replans/s: new plans per second of episode; plan s: median planning latency (wall clock)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted: no result")
