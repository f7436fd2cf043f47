"""`tdm-control launch`: the closed loop as real processes over DDS, stopped cleanly, failing loudly.

The main check: bridge and planner in lockstep over topics give exactly the
return of the in-process evaluation with the same seed and parameters, so the
transport loses, duplicates and reorders nothing.
"""

import argparse
import json
import math
import os
import re
import signal

import yaml
from ros_helpers import CARTPOLE_CONFIG, NodeProcess, ros_domain, spin_until  # noqa: F401 (fixture)

from tdm_control.evaluation.episodes import EvalConfig, evaluate
from tdm_control.ros import launcher as launcher_module
from tdm_control.ros import messages as m
from tdm_control.ros.embedded import EmbeddedNode
from tdm_control.ros.transport import QoS

SMALL = {"samples": 16, "horizon": 8}
STEPS = 200
EPISODES = 2
MAX_PLAN_AGE_S = 1.0
"""async: seconds (node clock) a played plan may be older than its state: the parameter the test sets."""


def launch(*args: str) -> NodeProcess:
    return NodeProcess(["-m", "tdm_control.cli", "launch", CARTPOLE_CONFIG, *args])


def config_planner_params() -> dict:
    """The shipped config's planner settings with SMALL's K and N: what the planner node plans with."""
    with open(CARTPOLE_CONFIG) as f:
        params = yaml.safe_load(f)["planner_node"]["ros__parameters"]["planner_params"]
    return {**params, **SMALL}


def small_planner_args(model: str = "mujoco") -> list[str]:
    return ["--model", model] + [arg for key, value in SMALL.items()
                                 for arg in ("--set", f"planner_node.planner_params.{key}={value}")]


def test_return_over_topics_equals_in_process_evaluation(tmp_path, ros_domain):  # noqa: F811
    result_path = tmp_path / "result.json"
    launcher = launch("--steps", str(STEPS), "--episodes", str(EPISODES), "--seed", "5",
                      "--result", str(result_path), *small_planner_args())
    code = launcher.wait()
    assert code == 0, launcher.output
    over_topics = json.loads(result_path.read_text())
    in_process = evaluate(EvalConfig(task="cartpole_swingup", model="mujoco", planner="warm_start",
                                     planner_params=config_planner_params(),
                                     episodes=EPISODES, steps=STEPS, seed=5), show_progress=False)
    assert len(over_topics["returns"]) == EPISODES
    for topics, reference in zip(over_topics["returns"], in_process["returns"]):
        assert abs(topics - reference) <= 1e-9, (over_topics["returns"], in_process["returns"])
    assert over_topics["answered_states"] == EPISODES * STEPS and over_topics["bad_commands"] == 0
    output = launcher.output
    assert re.search(r"^\[sim_bridge\] \[INFO\].*episode 1 finished: 200 steps, return", output, re.M)
    assert re.search(r"^\[planner_node\] \[INFO\].*planning: task cartpole_swingup", output, re.M)
    assert "[launch] sim_bridge finished; stopping the other nodes" in output
    assert "[launch] planner_node exited with status 0" in output


def test_the_shipped_tdm_plans_over_topics_as_it_does_in_process(tmp_path, ros_domain):  # noqa: F811
    """The README's main job: the shipped ONNX TDM in the planner node, a short lockstep episode."""
    model = os.path.join(os.path.dirname(CARTPOLE_CONFIG), "..", "models", "cartpole_swingup_tdm.onnx")
    result_path = tmp_path / "result.json"
    launcher = launch("--steps", "60", "--episodes", "1", "--seed", "2", "--result", str(result_path),
                      *small_planner_args(model))
    code = launcher.wait()
    assert code == 0, launcher.output
    over_topics = json.loads(result_path.read_text())["returns"]
    in_process = evaluate(EvalConfig(task="cartpole_swingup", model=model, planner="warm_start",
                                     planner_params=config_planner_params(),
                                     episodes=1, steps=60, seed=2), show_progress=False)["returns"]
    assert abs(over_topics[0] - in_process[0]) <= 1e-9, (over_topics, in_process)
    assert re.search(r"^\[planner_node\] \[INFO\].*planning: task cartpole_swingup, model .*cartpole_swingup_tdm.onnx",
                     launcher.output, re.M)


def launch_arguments(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    launcher_module.add_arguments(parser)
    return parser.parse_args([CARTPOLE_CONFIG, *args])


def test_realtime_mode_plans_beside_control_unless_execution_is_given():
    def execution(*args):
        return launcher_module.overrides_from(launch_arguments(*args)).get("planner_node", {}).get("execution")

    assert execution("--mode", "realtime") == "async"  # a realtime robot does not wait for a plan
    assert execution("--mode", "lockstep") == "lockstep"
    assert execution() is None  # the params file decides (config/cartpole.yaml: lockstep)
    assert execution("--mode", "realtime", "--set", "planner_node.execution=lockstep") == "lockstep"


def test_realtime_closed_loop_with_async_planning_completes_an_episode(tmp_path, ros_domain):  # noqa: F811
    """--mode realtime: the bridge steps on its timer and the planner plans beside its executor (async).

    The ground truth with small K and N, 300 steps in real processes. Asserted: the episode
    completes, every command is finite (the bridge counts any other as bad), plans are published
    as trajectories. Not the return: it depends on how fast this machine plans.
    """
    steps = 300
    probe = EmbeddedNode("probe", [])
    commands, plans, ticks = [], [], []
    many = QoS(reliable=True, depth=1000)
    probe.create_subscription(m.Float64MultiArray, "/effort_controller/commands", commands.append, many)
    probe.create_subscription(m.JointTrajectory, "/planner_node/planned_trajectory", plans.append, many)
    probe.create_subscription(m.Float64MultiArray, "/planner_node/execution_info", ticks.append, many)
    result_path = tmp_path / "result.json"
    launcher = launch("--mode", "realtime", "--steps", str(steps), "--episodes", "1", "--result", str(result_path),
                      "--model", "mujoco", "--set", "planner_node.planner_params.samples=16",
                      "--set", "planner_node.planner_params.horizon=20",
                      "--set", f"planner_node.max_plan_age={MAX_PLAN_AGE_S}")
    try:
        spin_until(probe, lambda: launcher.process.poll() is not None, timeout=120, what="the episode")
        assert launcher.wait() == 0, launcher.output
    finally:
        launcher.kill()
        probe.close()
    result = json.loads(result_path.read_text())
    assert result["mode"] == "realtime" and len(result["returns"]) == 1 and math.isfinite(result["returns"][0])
    assert result["bad_commands"] == 0, launcher.output  # a NaN or inf command would be counted here
    assert re.search(r"^\[planner_node\] \[INFO\].*execution async", launcher.output, re.M)
    assert commands and all(len(c.data) == 1 and math.isfinite(c.data[0]) for c in commands)
    assert plans, "no plan was published"
    for plan in plans:
        assert plan.joint_names == ["slider"] and len(plan.points) == 20
        assert [p.time_from_start.to_ns() for p in plan.points] == [i * 10_000_000 for i in range(20)]
        assert all(len(p.effort) == 1 and math.isfinite(p.effort[0]) for p in plan.points)
    # The executor's contract, on the node's clock (simulation time, not wall time): a tick that plays a
    # plan plays one planned from a state no older than max_plan_age, never from the future.
    played = [t.data for t in ticks if t.data[2] == 0]  # status ok: a plan was played
    assert played and all(0 <= time_s - stamp_s <= MAX_PLAN_AGE_S for time_s, stamp_s, _ in played)


def test_ctrl_c_stops_every_node_cleanly(ros_domain):  # noqa: F811
    launcher = launch("--episodes", "0", "--set", "sim_bridge.progress_period=20", *small_planner_args())
    launcher.wait_for_output(r"^\[sim_bridge\] .*step 20/1000")  # the loop is running
    assert launcher.interrupt() == 130
    output = launcher.output
    assert "[launch] Ctrl-C: stopping the nodes" in output
    assert re.search(r"^\[sim_bridge\] .*interrupted", output, re.M), output
    assert re.search(r"^\[planner_node\] .*interrupted", output, re.M), output
    for node in ("sim_bridge", "planner_node"):  # neither crashed on the way out (a signal would be named)
        assert f"[launch] {node} exited with status 0" in output, output
    assert "SIGTERM" not in output and "SIGKILL" not in output and "Traceback" not in output


def test_a_node_that_dies_makes_the_launcher_fail(ros_domain):  # noqa: F811
    launcher = launch("--episodes", "0", *small_planner_args())
    planner_pid = int(launcher.wait_for_output(r"started planner_node \(pid (\d+)\)").group(1))
    launcher.wait_for_output(r"^\[planner_node\] .*episode 0")
    os.kill(planner_pid, signal.SIGKILL)
    assert launcher.wait() == 1
    output = launcher.output
    assert "[launch] planner_node died (exit status -9); stopping the other nodes" in output
    assert "[launch] sim_bridge exited with status 0" in output


def test_a_node_with_bad_parameters_makes_the_launcher_fail(ros_domain):  # noqa: F811
    launcher = launch("--set", "sim_bridge.task=cartpole_swingdown")
    assert launcher.wait() == 2
    output = launcher.output
    assert re.search(r"^\[sim_bridge\] \[ERROR\].*bad parameter: unknown task 'cartpole_swingdown'", output, re.M)
    assert "[launch] sim_bridge died (exit status 2)" in output


def test_bad_launcher_arguments(tmp_path):
    missing = NodeProcess(["-m", "tdm_control.cli", "launch", str(tmp_path / "nope.yaml")])
    assert missing.wait() == 2 and "does not exist" in missing.output
    bad_set = launch("--set", "planner.samples=3")
    assert bad_set.wait() == 2 and "unknown node 'planner'" in bad_set.output


def test_loop_latency_benchmark_runs(ros_domain):  # noqa: F811
    bench = NodeProcess([os.path.join("benchmarks", "loop_latency.py"), "--steps", "30", "--episodes", "1"])
    assert bench.wait() == 0, bench.output
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in bench.lines
            if line.startswith(("responder", "planner_node"))}
    # Out of the ROS 2 graph and in it (TDM_ROS_GRAPH off and on), in one run.
    assert set(rows) == {(planner, graph) for planner in ("responder", "planner_node") for graph in ("off", "on")}
    for states, median, p99, maximum, throughput in rows.values():
        assert int(states) == 30 and 0 < float(median) <= float(p99) <= float(maximum) and float(throughput) > 0


def test_async_loop_benchmark_runs(ros_domain):  # noqa: F811
    bench = NodeProcess([os.path.join("benchmarks", "async_loop.py"), "--models", "mujoco", "--threads", "1",
                         "--episodes", "1", "--steps", "30", "--samples", "8", "--horizon", "5"])
    assert bench.wait() == 0, bench.output
    (line,) = [line for line in bench.lines if line.startswith("mujoco")]
    threads, on_time, *_ = line.split()[1:]
    assert threads == "1" and 0 <= float(on_time.rstrip("%")) <= 100
