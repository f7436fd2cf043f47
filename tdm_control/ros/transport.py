"""The one small node interface the nodes are written against, and the choice of its implementation.

Two transports implement `Node`: rclpy where it is importable (a sourced ROS 2
workspace) and an embedded Cyclone DDS one that speaks the ROS 2 wire format
otherwise. `make_node` picks one (`auto`, the default, or forced with the
`TDM_TRANSPORT` environment variable), and the node logs which and why.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Sequence

TRANSPORT_ENV = "TDM_TRANSPORT"
"""Environment variable that forces a transport: 'auto' (default), 'rclpy' or 'embedded'."""
TRANSPORTS = ("auto", "rclpy", "embedded")


@dataclasses.dataclass(frozen=True)
class QoS:
    """The part of a ROS 2 QoS profile the nodes use (history is always keep-last)."""

    reliable: bool = True
    """Reliable delivery (retransmit); False for best-effort (sensor data)."""
    transient_local: bool = False
    """Late-joining subscribers get the last `depth` messages (a latched topic)."""
    depth: int = 10
    """Messages kept per topic by the writer and the reader."""


SENSOR_DATA = QoS(reliable=False, depth=5)
"""Best-effort, like rclpy's qos_profile_sensor_data: joint states."""
LATEST_SENSOR_DATA = QoS(reliable=False, depth=1)
"""Best-effort, keep only the newest: a controller acts on the latest state, never a queue of old ones."""
COMMANDS = QoS(reliable=True, depth=10)
"""Reliable: torque commands, rewards, diagnostics."""
LATCHED = QoS(reliable=True, transient_local=True, depth=1)
"""Reliable and transient-local: state that late joiners need (the running episode)."""
CLOCK = QoS(reliable=False, depth=1)
"""Best-effort, newest only: rclcpp's ClockQoS for /clock."""


class Publisher(abc.ABC):
    @abc.abstractmethod
    def publish(self, message: Any) -> None:
        """Sends one message (a dataclass from tdm_control.ros.messages)."""

    @property
    @abc.abstractmethod
    def subscription_count(self) -> int:
        """Subscriptions currently matched with this publisher."""


class Subscription(abc.ABC):
    last_publisher: Any = None
    """Who wrote the message being handled (set before each callback): an id that differs between
    publishers (embedded: the DDS writer's instance handle); None where the transport cannot tell."""

    @property
    @abc.abstractmethod
    def publisher_count(self) -> int:
        """Publishers currently matched with this subscription."""


class Logger:
    """Writes '[LEVEL] [wall time] [node]: message' lines.

    `throttle_s` limits how often one kind of message is logged: a flood of one kind is
    logged once per `throttle_s` seconds, whatever its text (errors that carry values change
    their text every time), and the next line of that kind says how many were left out. The
    kind is the call site, refined by `throttle_key` where one site logs several kinds (each
    kind of bad input, each subscription). Keys are a fixed set, never message text, so a
    stream of varying messages can neither bypass the limit nor grow the logger's memory.
    """

    LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40, "fatal": 50}

    def __init__(self, name: str, level: str = "info", stream=None) -> None:
        self.name = name
        self.threshold = self.LEVELS.get(level.lower(), 20)
        self.stream = stream
        self._last: dict[tuple[str, int, str], float] = {}  # kind -> when it was last written (s, monotonic)
        self._suppressed: dict[tuple[str, int, str], int] = {}  # kind -> lines left out since

    def _admit(self, key: str | None, throttle_s: float | None) -> str | None:
        """None when this line of its kind is left out; else '' or a note of how many were left out."""
        if not throttle_s:
            return ""
        caller = sys._getframe(3)  # the caller of debug/info/warning/error
        kind = (caller.f_code.co_filename, caller.f_lineno, key or "")
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < throttle_s:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if not suppressed:
            return ""
        return f" [{suppressed} more like this in the last {now - last:.1f} s not shown]"

    def _log(self, level: str, message: str, throttle_s: float | None, key: str | None) -> None:
        if self.LEVELS[level] < self.threshold:
            return
        note = self._admit(key, throttle_s)
        if note is not None:
            self._write(level, message + note)

    def _write(self, level: str, message: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(f"[{level.upper()}] [{time.time():.6f}] [{self.name}]: {message}\n")
        stream.flush()

    def debug(self, message: str, throttle_s: float | None = None, throttle_key: str | None = None) -> None:
        self._log("debug", message, throttle_s, throttle_key)

    def info(self, message: str, throttle_s: float | None = None, throttle_key: str | None = None) -> None:
        self._log("info", message, throttle_s, throttle_key)

    def warning(self, message: str, throttle_s: float | None = None, throttle_key: str | None = None) -> None:
        self._log("warn", message, throttle_s, throttle_key)

    def error(self, message: str, throttle_s: float | None = None, throttle_key: str | None = None) -> None:
        self._log("error", message, throttle_s, throttle_key)


class Node(abc.ABC):
    """A ROS 2 node as the nodes of this package use it.

    Callbacks run one at a time on the thread that spins. A callback that raises
    is logged with its traceback and the node keeps running: one bad message must
    not stop a robot's controller.
    """

    transport: str
    """'rclpy' or 'embedded'."""
    name: str
    """The node's name after remapping."""
    parameters: dict[str, Any]
    """Parameter overrides given to this node (params files, -p), dotted names."""
    wildcard_parameters: frozenset[str] = frozenset()
    """Names in `parameters` that were given to all nodes ('/**', plain -p), not to this one: a name the
    node does not have is another node's (`params.own_parameters`)."""
    parameter_warnings: tuple[str, ...] = ()
    """Overrides that do not do what they seem to (a -p for all nodes that this node's own entry
    overrides); logged at start."""
    logger: Logger
    _shutdown_requested: bool = False
    _interrupted: bool = False

    @abc.abstractmethod
    def create_publisher(self, message_type: type, topic: str, qos: QoS) -> Publisher:
        """A publisher of `message_type` on `topic` ('~/x' is private to the node)."""

    @abc.abstractmethod
    def create_subscription(self, message_type: type, topic: str, callback: Callable[[Any], None],
                            qos: QoS) -> Subscription:
        """Calls `callback(message)` for each message received on `topic`."""

    @abc.abstractmethod
    def resolve(self, topic: str) -> str:
        """The fully qualified name of `topic` for this node ('~/reset' -> '/sim_bridge/reset')."""

    @abc.abstractmethod
    def create_timer(self, period_s: float, callback: Callable[[], None], ros_time: bool = False) -> None:
        """Calls `callback()` every `period_s` seconds of steady (wall) time, or of ROS time.

        With `ros_time`, the period is measured on the node's clock (`now_ns`), as rcl's
        timers on the ROS clock are: under use_sim_time it follows /clock, so the timer
        keeps the simulation's pace; periods the clock jumped over are skipped, not made
        up; a clock that goes back (a simulation reset) starts the timer over.
        """

    @abc.abstractmethod
    def now_ns(self) -> int:
        """ROS time in nanoseconds: the last /clock when use_sim_time is true, else system time."""

    @abc.abstractmethod
    def spin_once(self, timeout_s: float) -> None:
        """Waits up to `timeout_s` for messages or timers and runs their callbacks."""

    @abc.abstractmethod
    def close(self) -> None:
        """Leaves the ROS graph."""

    def describe_transport(self) -> str:
        """Details for the start-up log line (domain, discovery), starting with ', '."""
        return ""

    def declare_parameters(self, values: dict[str, Any]) -> None:
        """Makes the node's effective parameters visible (e.g. to `ros2 param list`)."""

    def accept_parameter_changes(self, names: Sequence[str], handler: Callable[[dict[str, Any]], str | None],
                                 constraints: str = "") -> None:
        """Lets the declared parameters `names` change while the node runs (`ros2 param set`).

        `handler(changes)` gets {name: new value} on the spinning thread, validates the changes as the
        parameter file is validated and applies them, returning None; or returns why they are refused
        (then nothing changes). Every other parameter is read-only: a request to set one is refused with
        the reason. `constraints` describes the accepted values (ParameterDescriptor.additional_constraints).
        A transport without parameter services ignores this.
        """

    def request_shutdown(self) -> None:
        """Makes `spin` return after the current callback."""
        self._shutdown_requested = True

    @property
    def shutdown_requested(self) -> bool:
        return self._shutdown_requested

    @property
    def interrupted(self) -> bool:
        """Whether SIGINT (Ctrl-C) has asked this node to stop."""
        return self._interrupted

    def interrupt(self) -> None:
        """Ctrl-C: makes `spin` raise KeyboardInterrupt after the current callback (see `make_node`)."""
        self._interrupted = True
        self.request_shutdown()

    def spin(self) -> None:
        """Runs callbacks until `request_shutdown`, SIGINT or SIGTERM.

        Raises:
          KeyboardInterrupt after SIGINT (Ctrl-C), as `rclpy.spin` does.
        """
        while not self.shutdown_requested:
            self.spin_once(0.1)
        if self._interrupted:
            raise KeyboardInterrupt

    def guard(self, callback: Callable[..., None]) -> Callable[..., None]:
        """`callback` wrapped so that an exception is logged (throttled) instead of ending the node."""

        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception:  # noqa: BLE001 - reported in full, and the node goes on
                self.logger.error(f"callback {getattr(callback, '__qualname__', callback)} failed:\n"
                                  f"{traceback.format_exc()}", throttle_s=1.0, throttle_key=repr(callback))

        return guarded


def resolve_topic(topic: str, node_name: str, namespace: str = "", remaps: dict[str, str] | None = None) -> str:
    """The fully qualified topic name: '~/x' -> '/ns/node/x', 'x' -> '/ns/x', then remapped."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    if topic.startswith("~"):
        name = f"{ns}/{node_name}{topic[1:]}"
    elif topic.startswith("/"):
        name = topic
    else:
        name = f"{ns}/{topic}"
    remaps = remaps or {}
    for source in (topic, name):
        if source in remaps:
            return resolve_topic(remaps[source], node_name, namespace)
    return name


def rclpy_available() -> tuple[bool, str]:
    """Whether rclpy imports here, and why not."""
    try:
        import rclpy  # noqa: F401
    except ImportError as e:
        return False, str(e)
    return True, ""


def choose_transport(requested: str | None = None) -> tuple[str, str]:
    """Picks 'rclpy' or 'embedded'.

    Args:
      requested: 'auto', 'rclpy' or 'embedded'; None reads TDM_TRANSPORT (default 'auto').

    Returns:
      the transport and the reason, for the log.

    Raises:
      RuntimeError when the forced transport cannot be used, saying how to fix it.
    """
    requested = (requested or os.environ.get(TRANSPORT_ENV) or "auto").lower()
    if requested not in TRANSPORTS:
        raise RuntimeError(f"{TRANSPORT_ENV}={requested!r}: choose one of {', '.join(TRANSPORTS)}")
    if requested == "embedded":
        return "embedded", f"forced by {TRANSPORT_ENV}=embedded"
    ok, why = rclpy_available()
    if requested == "rclpy":
        if not ok:
            raise RuntimeError(f"{TRANSPORT_ENV}=rclpy but rclpy does not import ({why}); "
                               "source a ROS 2 workspace (source /opt/ros/<distro>/setup.bash) "
                               f"or use {TRANSPORT_ENV}=embedded")
        return "rclpy", f"forced by {TRANSPORT_ENV}=rclpy"
    if ok:
        return "rclpy", "rclpy is importable (a sourced ROS 2 workspace)"
    return "embedded", f"rclpy is not importable ({why})"


def handle_ctrl_c() -> None:
    """Makes SIGINT (Ctrl-C) raise KeyboardInterrupt in this process (the launcher; nodes: `make_node`).

    A process started with SIGINT ignored (a background job of a non-interactive
    shell, `nohup cmd &` in a script, some CI runners) inherits the ignore, and
    Python then leaves it so: such a node could only be killed. Only the main
    thread can set handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _on_ctrl_c(node: Node) -> None:
    if node.interrupted:
        raise KeyboardInterrupt
    node.interrupt()


def make_node(name: str, argv: Sequence[str] | None = None, transport: str | None = None) -> Node:
    """Creates node `name` on the chosen transport, with ROS arguments from `argv` (default sys.argv).

    The first log line says which transport was chosen and why; overrides that are shadowed follow.

    Raises:
      ConfigError for a bad command line or environment (a missing params file, `-p` without ':=',
      ROS_DOMAIN_ID out of range), RuntimeError for a forced transport that cannot be used: a node's
      main reports either with `command_line_error`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen, reason = choose_transport(transport)
    if chosen == "rclpy":
        from tdm_control.ros.rclpy_transport import RclpyNode

        node: Node = RclpyNode(name, argv)
    else:
        from tdm_control.ros.embedded import EmbeddedNode

        node = EmbeddedNode(name, argv)
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C ends the spin after the current callback; SIGTERM (launchers, `kill`) too.
            # The first SIGINT must not raise KeyboardInterrupt wherever Python happens to be:
            # cyclonedds' take builds each sample's info with Python code, and an exception
            # raised there crashes the process (SIGSEGV; cyclonedds 11.0.1 `readtake_post` does not
            # check for it). A second Ctrl-C raises at once, for a callback that never returns.
            signal.signal(signal.SIGINT, lambda *_: _on_ctrl_c(node))
            signal.signal(signal.SIGTERM, lambda *_: node.request_shutdown())
    node.logger.info(f"transport: {node.transport} ({reason}){node.describe_transport()}")
    for warning in node.parameter_warnings:
        node.logger.warning(warning)
    return node


USAGE_ERROR = 2
"""Exit status for a bad command line or environment (as argparse uses)."""


def command_line_error(program: str, error: Exception) -> int:
    """Reports a bad command line or environment in one line on stderr, without a traceback, as
    argparse does; returns the exit status, `USAGE_ERROR`."""
    sys.stderr.write(f"{program}: error: {error}\n")
    sys.stderr.flush()
    return USAGE_ERROR
