"""The node interface over the embedded transport: selection, discovery settings, QoS, order, clock."""

import os
import signal

import pytest
from ros_helpers import ros_domain, spin_until  # noqa: F401 (fixture)

from tdm_control.config import ConfigError
from tdm_control.ros import messages as m
from tdm_control.ros.embedded import EmbeddedNode, domain_settings
from tdm_control.ros.transport import CLOCK, COMMANDS, LATCHED, SENSOR_DATA, choose_transport, make_node


def test_transport_choice_is_automatic_forced_and_explained(monkeypatch):
    monkeypatch.delenv("TDM_TRANSPORT", raising=False)
    transport, reason = choose_transport()
    assert transport == "embedded" and "rclpy is not importable" in reason  # no ROS 2 on this machine
    assert choose_transport("embedded") == ("embedded", "forced by TDM_TRANSPORT=embedded")
    with pytest.raises(RuntimeError, match="source a ROS 2 workspace"):
        choose_transport("rclpy")
    monkeypatch.setenv("TDM_TRANSPORT", "zenoh")
    with pytest.raises(RuntimeError, match="choose one of auto, rclpy, embedded"):
        choose_transport()


def test_discovery_follows_ros2_jazzy_and_respects_the_environment():
    """Details and real peers: test_ros_discovery.py."""
    domain, config, description = domain_settings({})
    assert domain == 0 and "discovery range SUBNET" in description  # Jazzy's default
    assert "<ParticipantIndex>auto</ParticipantIndex>" in config and "AllowMulticast" not in config
    assert domain_settings({"ROS_DOMAIN_ID": "42"})[0] == 42
    assert domain_settings({"CYCLONEDDS_URI": "file:///etc/cyclone.xml"})[1].endswith("</CycloneDDS>,"
                                                                                      "file:///etc/cyclone.xml")
    assert "<AllowMulticast>false" in domain_settings({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})[1]
    for bad in ("x", "233", "-1"):
        with pytest.raises(ConfigError, match="ROS_DOMAIN_ID"):
            domain_settings({"ROS_DOMAIN_ID": bad})


@pytest.fixture
def own_signal_handlers():
    """`make_node` installs SIGINT and SIGTERM handlers; pytest gets its own back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_make_node_logs_the_transport(ros_domain, capsys, own_signal_handlers):  # noqa: F811
    node = make_node("talker", ["--ros-args", "-p", "answer:=42"])
    try:
        assert node.transport == "embedded" and node.parameters == {"answer": 42}
        assert "transport: embedded (rclpy is not importable" in capsys.readouterr().err
        assert f"domain {ros_domain}" in node.describe_transport()
    finally:
        node.close()


def test_ctrl_c_ends_the_spin_after_the_running_callback(ros_domain, own_signal_handlers):  # noqa: F811
    """The first SIGINT raises nowhere in particular (inside a DDS take it crashed the node): the
    running callback finishes, then `spin` raises KeyboardInterrupt. A second SIGINT raises at once."""
    node, talker = make_node("listener", []), EmbeddedNode("talker", [])
    try:
        steps = []

        def callback(message: m.Int32) -> None:
            steps.append("started")
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the callback
            steps.extend(["finished", message.data])

        node.create_subscription(m.Int32, "/count", callback, COMMANDS)
        publisher = talker.create_publisher(m.Int32, "/count", COMMANDS)
        spin_until(node, lambda: publisher.subscription_count > 0, what="discovery")
        publisher.publish(m.Int32(data=7))
        with pytest.raises(KeyboardInterrupt):
            node.spin()
        assert steps == ["started", "finished", 7] and node.interrupted
        with pytest.raises(KeyboardInterrupt):  # the second Ctrl-C does not wait
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
    finally:
        talker.close()
        node.close()


@pytest.fixture
def pair(ros_domain):  # noqa: F811
    a, b = EmbeddedNode("a", []), EmbeddedNode("b", [])
    yield a, b
    a.close()
    b.close()


def test_latched_topic_reaches_a_late_subscriber(pair):
    a, b = pair
    publisher = a.create_publisher(m.Int32, "/episode", LATCHED)
    publisher.publish(m.Int32(data=1))
    publisher.publish(m.Int32(data=2))
    got = []
    b.create_subscription(m.Int32, "/episode", lambda msg: got.append(msg.data), LATCHED)
    spin_until(b, lambda: got, what="the latched message")
    assert got == [2]


def test_callbacks_run_in_send_order_across_topics(pair):
    a, b = pair
    first = a.create_publisher(m.Float64, "/first", COMMANDS)
    second = a.create_publisher(m.Int32, "/second", COMMANDS)
    got = []
    b.create_subscription(m.Float64, "/first", lambda msg: got.append(msg.data), COMMANDS)
    b.create_subscription(m.Int32, "/second", lambda msg: got.append(msg.data), COMMANDS)
    spin_until(a, lambda: first.subscription_count and second.subscription_count, what="matching")
    sent = [0.5, 1, 1.5, 2, 2.5, 3]
    for value in sent:
        (first.publish(m.Float64(data=value)) if isinstance(value, float) else second.publish(m.Int32(data=value)))
    spin_until(b, lambda: len(got) == len(sent), what="all messages")
    assert got == sent


def test_a_failing_callback_is_logged_and_the_node_goes_on(pair, capsys):
    a, b = pair
    publisher = a.create_publisher(m.Float64, "/numbers", COMMANDS)
    got = []

    def callback(msg):
        if msg.data < 0:
            raise ValueError("negative")
        got.append(msg.data)

    b.create_subscription(m.Float64, "/numbers", callback, COMMANDS)
    spin_until(a, lambda: publisher.subscription_count, what="matching")
    for value in (1.0, -1.0, 2.0):
        publisher.publish(m.Float64(data=value))
    spin_until(b, lambda: got == [1.0, 2.0], what="the good messages")
    err = capsys.readouterr().err
    assert "[ERROR]" in err and "ValueError: negative" in err


def test_best_effort_sensor_data_and_timers(pair):
    a, b = pair
    publisher = a.create_publisher(m.JointState, "/joint_states", SENSOR_DATA)
    got, ticks = [], []
    b.create_subscription(m.JointState, "/joint_states", got.append, SENSOR_DATA)
    b.create_timer(0.01, lambda: ticks.append(1))
    sent = m.JointState(header=m.Header(stamp=m.Time(sec=1, nanosec=2)), name=["j"], position=[0.5],
                        velocity=[-0.5], effort=[0.0])
    spin_until(a, lambda: publisher.subscription_count, what="matching")
    publisher.publish(sent)
    spin_until(b, lambda: got and len(ticks) >= 3, what="the joint state and three timer ticks")
    assert got == [sent]


def test_use_sim_time_follows_clock(ros_domain):  # noqa: F811
    clock_source = EmbeddedNode("bridge", [])
    node = EmbeddedNode("planner", ["--ros-args", "-p", "use_sim_time:=true"])
    wall = EmbeddedNode("wall", [])
    try:
        assert node.now_ns() == 0  # no /clock yet
        publisher = clock_source.create_publisher(m.Clock, "/clock", CLOCK)
        spin_until(clock_source, lambda: publisher.subscription_count, what="the /clock subscription")
        publisher.publish(m.Clock(clock=m.Time(sec=12, nanosec=5)))
        spin_until(node, lambda: node.now_ns() == 12_000_000_005, what="sim time")
        assert wall.now_ns() > 1_000_000_000 * 1_000_000_000  # system time, not /clock
    finally:
        for n in (clock_source, node, wall):
            n.close()
    with pytest.raises(ConfigError, match="use_sim_time"):
        EmbeddedNode("x", ["--ros-args", "-p", "use_sim_time:=maybe"])


def test_a_ros_time_timer_follows_sim_time(ros_domain):  # noqa: F811
    """Under use_sim_time a `ros_time` timer fires on /clock: once per period of simulated time, never before
    the first /clock, once for a jump over several periods, and at once when the clock goes back (a reset)."""
    clock_source = EmbeddedNode("bridge", [])
    node = EmbeddedNode("planner", ["--ros-args", "-p", "use_sim_time:=true"])
    try:
        ticks: list[int] = []
        node.create_timer(0.01, lambda: ticks.append(node.now_ns()), ros_time=True)
        publisher = clock_source.create_publisher(m.Clock, "/clock", CLOCK)
        spin_until(clock_source, lambda: publisher.subscription_count, what="the /clock subscription")
        for _ in range(3):
            node.spin_once(0.02)
        assert ticks == []  # no /clock yet: no time to keep

        def clock(ns: int) -> None:
            def received() -> bool:  # /clock is best-effort: publish until the node has it
                if node.now_ns() == ns:
                    return True
                publisher.publish(m.Clock(clock=m.Time.from_ns(ns)))
                return False

            spin_until(node, received, what=f"/clock {ns}")

        ms = 1_000_000
        for ns in (5 * ms, 10 * ms, 15 * ms, 20 * ms, 25 * ms, 55 * ms, 60 * ms, 65 * ms, 0, 5 * ms, 10 * ms):
            clock(ns)
        assert ticks == [5 * ms, 15 * ms, 25 * ms, 55 * ms, 65 * ms, 0, 10 * ms]
    finally:
        clock_source.close()
        node.close()
