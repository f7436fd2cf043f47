"""Realtime mode with real processes: a dead planner means zero torque; a restarted one takes over again.

The bridge publishes, with every state, the efforts its actuators applied in the
step before, so the test sees what torque the robot got. The exact timeout rule
(a command older than `command_timeout` is replaced by zero) is checked with
injected time in test_bridge_core.py; here, no wall-clock threshold is asserted.
"""

import signal

from ros_helpers import NodeProcess, params_args, ros_domain, spin_until  # noqa: F401 (fixture)

from tdm_control.ros import messages as m
from tdm_control.ros.embedded import EmbeddedNode
from tdm_control.ros.transport import SENSOR_DATA

TIMEOUT_S = 0.2


def start_planner(tmp_path) -> NodeProcess:
    return NodeProcess.node("tdm_control.nodes.planner_node", *params_args(
        tmp_path, {"planner_node": {"model": "mujoco", "planner_params": {"samples": 8, "horizon": 5}}}))


def test_killing_the_planner_means_zero_torque_and_a_new_planner_resumes(tmp_path, ros_domain):  # noqa: F811
    bridge = NodeProcess.node("sim_bridge.bridge_node", *params_args(tmp_path, {"sim_bridge": {
        "mode": "realtime", "episodes": 0, "command_timeout": TIMEOUT_S, "progress_period": 0}}))
    planner = start_planner(tmp_path)
    probe = EmbeddedNode("probe", [])
    efforts: list[float] = []
    probe.create_subscription(m.JointState, "/joint_states", lambda s: efforts.append(s.effort[0]), SENSOR_DATA)
    try:
        spin_until(probe, lambda: any(e != 0.0 for e in efforts[-10:]), what="the planner pushing the cart")
        bridge.wait_for_output(r"commands on /effort_controller/commands: applying them")

        planner.process.send_signal(signal.SIGKILL)
        planner.wait()
        bridge.wait_for_output(rf"no command on /effort_controller/commands for more than {TIMEOUT_S} s: "
                               "applying zero torque")
        spin_until(probe, lambda: efforts and efforts[-1] == 0.0, what="zero effort")
        efforts.clear()
        spin_until(probe, lambda: len(efforts) >= 30, what="30 more states")
        assert all(e == 0.0 for e in efforts), "nothing but zero torque while no planner runs"
        assert bridge.process.poll() is None

        planner = start_planner(tmp_path)
        efforts.clear()
        spin_until(probe, lambda: any(e != 0.0 for e in efforts), what="the new planner pushing the cart")
        # The bridge logs the resumption too (its log line may reach us after the state that shows it).
        spin_until(probe, lambda: bridge.output.rindex("applying them") > bridge.output.index("applying zero torque"),
                   what="the bridge logging that commands are applied again")
        assert bridge.interrupt() == 0 and planner.interrupt() == 0
    finally:
        bridge.kill()
        planner.kill()
        probe.close()
