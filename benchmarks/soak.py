"""Soak: both nodes under a steady stream of good and bad messages, with their memory and CPU over time.

    python benchmarks/soak.py                      # 10 minutes at 1 kHz (BENCHMARKS.md)
    python benchmarks/soak.py --duration 60        # a quick check

Starts the real planner node (lockstep, ground-truth model, K = 8, N = 5) and the real
bridge node (realtime, cartpole) as processes on a private DDS domain, each on its own
topics so they do not drive each other, and streams to them from this process:

* to the planner, joint states at `--rate` Hz with ever newer stamps: 9 in 10 good, 1 in
  10 bad in a varying way (implausible values that change every time, a missing joint);
* to the bridge, commands at `--rate` Hz: 9 in 10 good, 1 in 10 bad (NaN, or a varying
  number of values).

Once a second it samples each node's resident memory (VmRSS) and CPU time from /proc,
and the bytes each has logged. It prints one line per `--report` seconds and, at the
end, the growth of resident memory from the end of the warm-up (`--warmup` s) to the
end, with the slope of a least-squares line through the samples after warm-up (MB per
minute): a leak shows as a steady slope, a bounded node as a flat line. `--out` writes
every sample as JSON.
"""

from __future__ import annotations

import argparse
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
from tdm_control.ros.params import write_params_file  # noqa: E402
from tdm_control.ros.transport import COMMANDS, SENSOR_DATA, make_node  # noqa: E402

CONFIG = os.path.join(ROOT, "config", "cartpole.yaml")
NAMES = ["slider", "hinge_1"]
START_TIMEOUT_S = 120.0
"""Longest the nodes may take to start and match this process's topics."""
OVERRIDES = {
    "planner_node": {"model": "mujoco", "planner_params": {"samples": 8, "horizon": 5}, "episode_topic": "",
                     "use_sim_time": False, "joint_states_topic": "/soak/joint_states",
                     "command_topic": "/soak/planner_commands", "state_timeout": 5.0},
    "sim_bridge": {"mode": "realtime", "episodes": 0, "steps": 0, "progress_period": 0,
                   "command_topic": "/soak/bridge_commands", "joint_states_topic": "/soak/bridge_joint_states",
                   "clock_topic": "/soak/clock", "reward_topic": "/soak/reward"},
}


def proc_sample(pid: int) -> tuple[float, float]:
    """(resident memory in MB, CPU seconds used so far) of process `pid`."""
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_kb / 1024.0, (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def start(module: str, params: str, log_path: str) -> subprocess.Popen:
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, "-m", module, "--ros-args", "--params-file", CONFIG,
                             "--params-file", params], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, MUJOCO_GL="disable", PYTHONUNBUFFERED="1"))


def state(stamp_ns: int, i: int, rng: random.Random) -> m.JointState:
    """Joint state number `i`: good, or (1 in 10) bad in a way that changes every time."""
    positions, velocities, names = [0.1 * np.sin(i * 1e-3), 3.0], [0.0, 0.5], NAMES
    if i % 10 == 5:
        velocities = [0.0, 1e6 + rng.random()]  # implausible, a different value each time
    elif i % 10 == 9:
        names, positions, velocities = ["hinge_1"], [float(i)], [0.0]  # a missing joint
    return m.JointState(header=m.Header(stamp=m.Time.from_ns(stamp_ns)), name=list(names),
                        position=list(positions), velocity=list(velocities), effort=[0.0] * len(names))


def command(i: int) -> m.Float64MultiArray:
    if i % 10 == 5:
        return m.Float64MultiArray(data=[float("nan")])
    if i % 10 == 9:
        return m.Float64MultiArray(data=[0.0] * (2 + i % 7))  # a varying wrong length
    return m.Float64MultiArray(data=[np.sin(i * 1e-3)])


def slope_mb_per_min(times: list[float], values: list[float]) -> float:
    if len(times) < 2:
        return float("nan")
    return float(np.polyfit(np.asarray(times) / 60.0, np.asarray(values), 1)[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of streaming")
    parser.add_argument("--rate", type=float, default=1000.0, help="messages per second to each node")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before growth is measured from")
    parser.add_argument("--report", type=float, default=60.0, help="seconds between progress lines")
    parser.add_argument("--out", help="write every sample here as JSON")
    args = parser.parse_args()
    if args.warmup >= args.duration:
        raise SystemExit("--warmup must be shorter than --duration")
    os.environ["ROS_DOMAIN_ID"] = os.environ.get("SOAK_DOMAIN_ID", str(random.Random().randint(100, 199)))

    folder = tempfile.mkdtemp(prefix="tdm-soak-")
    params = os.path.join(folder, "overrides.yaml")
    write_params_file(params, OVERRIDES)
    logs = {name: os.path.join(folder, f"{name}.log") for name in ("planner_node", "sim_bridge")}
    nodes = {"planner_node": start("tdm_control.nodes.planner_node", params, logs["planner_node"]),
             "sim_bridge": start("sim_bridge.bridge_node", params, logs["sim_bridge"])}
    node = make_node("soak", [])
    answers: list[int] = [0]
    pub_state = node.create_publisher(m.JointState, "/soak/joint_states", SENSOR_DATA)
    pub_command = node.create_publisher(m.Float64MultiArray, "/soak/bridge_commands", COMMANDS)
    sub = node.create_subscription(m.Float64MultiArray, "/soak/planner_commands",
                                   lambda _: answers.__setitem__(0, answers[0] + 1), COMMANDS)
    samples: list[dict] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (pub_state.subscription_count and pub_command.subscription_count and sub.publisher_count):
            if time.monotonic() > deadline or any(p.poll() is not None for p in nodes.values()):
                raise SystemExit(f"the nodes did not start (logs in {folder})")
            node.spin_once(0.1)
        print(f"soak: {args.duration:.0f} s at {args.rate:.0f} Hz to each node; {platform.processor() or 'cpu'}, "
              f"{os.cpu_count()} cores; node logs in {folder}", flush=True)
        rng = random.Random(0)
        period = 1.0 / args.rate
        start_s = time.monotonic()
        next_send, next_sample, next_report, i = start_s, start_s, start_s + args.report, 0
        cpu0 = {name: proc_sample(p.pid)[1] for name, p in nodes.items()}
        while True:
            now = time.monotonic()
            if now - start_s >= args.duration:
                break
            if now >= next_send:
                pub_state.publish(state(i * 1_000_000, i, rng))
                pub_command.publish(command(i))
                i += 1
                next_send += period
                if now - next_send > 1.0:  # fell far behind (a stalled machine): do not burst to catch up
                    next_send = now
            if now >= next_sample:
                sample = {"t_s": now - start_s, "sent": i, "planner_answers": answers[0]}
                for name, process in nodes.items():
                    if process.poll() is not None:
                        raise SystemExit(f"{name} exited ({process.returncode}); log: {logs[name]}")
                    rss, cpu = proc_sample(process.pid)
                    sample[name] = {"rss_mb": rss, "cpu_s": cpu - cpu0[name], "log_bytes": os.path.getsize(logs[name])}
                samples.append(sample)
                next_sample += 1.0
            if now >= next_report:
                s = samples[-1]
                print(f"{s['t_s']:6.0f} s: sent {s['sent']}, planner answered {s['planner_answers']}; "
                      + "; ".join(f"{n} {s[n]['rss_mb']:.1f} MB, CPU {100 * s[n]['cpu_s'] / s['t_s']:.0f}%, "
                                  f"log {s[n]['log_bytes'] / 1024:.0f} KiB" for n in nodes), flush=True)
                next_report += args.report
            node.spin_once(0.0)
            pause = min(next_send, next_sample) - time.monotonic()
            if pause > 0:
                time.sleep(min(pause, 0.0005))
    finally:
        for process in nodes.values():
            if process.poll() is None:
                process.send_signal(2)
        for process in nodes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        node.close()

    after = [s for s in samples if s["t_s"] >= args.warmup]
    first, last = after[0], samples[-1]
    rate = last["sent"] / last["t_s"]
    print(f"\nsent {last['sent']} joint states and {last['sent']} commands in {last['t_s']:.0f} s "
          f"({rate:.0f} Hz each); the planner answered {last['planner_answers']} (it keeps the newest state, "
          "planning takes time)")
    print(f"{'node':>13} | RSS at {first['t_s']:.0f} s | RSS at end | growth | slope after warm-up | CPU | log")
    for name in nodes:
        rss = [s[name]["rss_mb"] for s in after]
        growth = last[name]["rss_mb"] - first[name]["rss_mb"]
        slope = slope_mb_per_min([s["t_s"] for s in after], rss)
        log_rate = (last[name]["log_bytes"] - first[name]["log_bytes"]) / max(last["t_s"] - first["t_s"], 1e-9)
        print(f"{name:>13} | {first[name]['rss_mb']:9.1f} MB | {last[name]['rss_mb']:7.1f} MB | {growth:+6.1f} MB | "
              f"{slope:+8.3f} MB/min | {100 * last[name]['cpu_s'] / last['t_s']:3.0f}% | {log_rate:.0f} B/s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "samples": samples}, f)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
