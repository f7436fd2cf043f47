"""The rclpy transport: the node interface over a real ROS 2 client library, in a sourced workspace.

Messages are converted field by field between the dataclasses of
`tdm_control.ros.messages` and the rosidl classes of the same ROS 2 types.
Parameters come from rcl (params files, -p, launch), so ROS 2 tools see them.
"""

from __future__ import annotations

import array
import dataclasses
import importlib
import os
import typing
from typing import Any, Callable, Sequence

import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.node import Node as RosNode
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from tdm_control.config import ConfigError
from tdm_control.ros.messages import field_types, from_fields
from tdm_control.ros.params import parse_ros_args, shadowed_overrides, wildcard_names
from tdm_control.ros.transport import Logger, Node, Publisher, QoS, Subscription

BUILTIN_PARAMETERS = ("start_type_description_service",)
"""Parameters rclpy declares on every node that are not the package's (use_sim_time is kept)."""
BUILTIN_PREFIXES = ("qos_overrides.",)


def ros_class(message_type: type) -> type:
    """The rosidl class of a message dataclass, e.g. sensor_msgs.msg.JointState."""
    package, kind, name = message_type.ros_type.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def to_ros(message: Any) -> Any:
    """A message dataclass as the rosidl message of the same type."""
    cls = type(message)
    hints = field_types(cls)
    out = ros_class(cls)()
    for f in dataclasses.fields(cls):
        value, annotation = getattr(message, f.name), hints[f.name]
        if dataclasses.is_dataclass(annotation):
            value = to_ros(value)
        elif typing.get_origin(annotation) is list:
            (item,) = typing.get_args(annotation)
            if dataclasses.is_dataclass(item):
                value = [to_ros(v) for v in value]
            elif typing.get_args(item) and typing.get_args(item)[0] is float:
                value = array.array("d", [float(v) for v in value])
            elif typing.get_args(item):
                value = [typing.get_args(item)[0](v) for v in value]
            else:
                value = list(value)
        elif typing.get_origin(annotation) is typing.Annotated:
            value = typing.get_args(annotation)[0](value)
        setattr(out, f.name, value)
    return out


def ros_qos(qos: QoS) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=qos.depth,
        reliability=ReliabilityPolicy.RELIABLE if qos.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if qos.transient_local else DurabilityPolicy.VOLATILE)


class _RclpyLogger(Logger):
    """The interface's logger, writing through rclpy's (so /rosout and ROS log settings apply)."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__(ros_logger.name)
        self._ros = ros_logger

    def _log(self, level: str, message: str, throttle_s: float | None, key: str | None) -> None:
        note = self._admit(key, throttle_s)  # ROS decides the level shown
        if note is not None:
            getattr(self._ros, "warning" if level == "warn" else level)(message + note)


class RclpyPublisher(Publisher):
    def __init__(self, publisher: Any) -> None:
        self._publisher = publisher

    def publish(self, message: Any) -> None:
        self._publisher.publish(to_ros(message))

    @property
    def subscription_count(self) -> int:
        return self._publisher.get_subscription_count()


class RclpySubscription(Subscription):
    def __init__(self, node: Any, topic: str) -> None:
        self._node, self._topic = node, topic

    @property
    def publisher_count(self) -> int:
        return self._node.count_publishers(self._topic)


class RclpyNode(Node):
    """A node backed by `rclpy.node.Node`; spins with rclpy's single-threaded executor."""

    transport = "rclpy"

    def __init__(self, name: str, argv: Sequence[str] = ()) -> None:
        if not rclpy.ok():
            rclpy.init(args=["node", *argv])
        self._node = RosNode(name, allow_undeclared_parameters=True,
                             automatically_declare_parameters_from_overrides=True)
        self.name = self._node.get_name()
        self.logger = _RclpyLogger(self._node.get_logger())
        self.parameters = {
            key: list(p.value) if isinstance(p.value, array.array) else p.value
            for key, p in self._node.get_parameters_by_prefix("").items()
            if key not in BUILTIN_PARAMETERS and not key.startswith(BUILTIN_PREFIXES)
        }
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._declared: set[str] = set()  # the package's parameters (declare_parameters)
        try:  # rcl read the parameters; which came for all nodes is read again here (best effort)
            ros = parse_ros_args(argv)
            fqn = self._node.get_fully_qualified_name()
            self.wildcard_parameters = wildcard_names(ros, fqn)
            self.parameter_warnings = tuple(shadowed_overrides(ros, fqn))
        except ConfigError:  # an argument only rcl knows: no warnings, every parameter counts as the node's
            pass

    def describe_transport(self) -> str:
        rmw = os.environ.get("RMW_IMPLEMENTATION", "default")
        return f", RMW {rmw}, ROS_DOMAIN_ID {os.environ.get('ROS_DOMAIN_ID', '0')}"

    def declare_parameters(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if value is None or (isinstance(value, (list, tuple)) and not value):
                continue  # ROS 2 parameters cannot hold None or an untyped empty list
            if not self._node.has_parameter(key):
                self._node.declare_parameter(key, list(value) if isinstance(value, tuple) else value)
            self._declared.add(key)

    def accept_parameter_changes(self, names: Sequence[str], handler: Callable[[dict[str, Any]], str | None],
                                 constraints: str = "") -> None:
        # rclpy serves the parameters; a set request passes through this callback first (on the spinning
        # thread), as the embedded transport's parameter services do: `names` go to `handler`, the
        # package's other parameters are refused as read-only, rclpy's own (use_sim_time, ...) pass.
        from rcl_interfaces.msg import SetParametersResult

        dynamic = set(names)

        def on_set(parameters: list) -> Any:
            changes = {}
            for parameter in parameters:
                if parameter.name in dynamic:
                    value = parameter.value
                    changes[parameter.name] = list(value) if isinstance(value, array.array) else value
                elif parameter.name in self._declared and parameter.name != "use_sim_time":
                    return SetParametersResult(successful=False, reason=(
                        f"parameter '{parameter.name}' is read-only: node {self.name} reads it once at start; "
                        f"restart the node with the new value (parameters that can change while it runs: "
                        f"{', '.join(sorted(dynamic)) or 'none'})"))
            reason = handler(changes) if changes else None
            return SetParametersResult(successful=reason is None, reason=reason or "")

        self._node.add_on_set_parameters_callback(on_set)

    def create_publisher(self, message_type: type, topic: str, qos: QoS) -> Publisher:
        return RclpyPublisher(self._node.create_publisher(ros_class(message_type), topic, ros_qos(qos)))

    def create_subscription(self, message_type: type, topic: str, callback: Callable[[Any], None],
                            qos: QoS) -> Subscription:
        guarded = self.guard(callback)
        subscription = self._node.create_subscription(ros_class(message_type), topic,
                                                      lambda m: guarded(from_fields(m, message_type)), ros_qos(qos))
        return RclpySubscription(self._node, subscription.topic_name)

    def resolve(self, topic: str) -> str:
        return self._node.resolve_topic_name(topic)

    def create_timer(self, period_s: float, callback: Callable[[], None], ros_time: bool = False) -> None:
        # The node's own clock is the ROS clock: rcl drives its timers from /clock under use_sim_time.
        clock = self._node.get_clock() if ros_time else self._steady
        self._node.create_timer(period_s, self.guard(callback), clock=clock)

    def now_ns(self) -> int:
        return self._node.get_clock().now().nanoseconds

    def spin_once(self, timeout_s: float) -> None:
        try:
            rclpy.spin_once(self._node, timeout_sec=timeout_s)
        except Exception as e:  # rclpy raises ExternalShutdownException after SIGINT (Jazzy)
            if type(e).__name__ == "ExternalShutdownException":
                self.request_shutdown()
                return
            raise
        if not rclpy.ok():
            self.request_shutdown()

    def close(self) -> None:
        self._node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
