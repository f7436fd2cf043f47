"""The ROS 2 messages the nodes exchange, as plain dataclasses that import no middleware.

Node code builds and reads these; each transport converts them to its own
representation (rosidl classes under rclpy, Cyclone DDS IDL types in the
embedded transport). Field names, order and types follow the ROS 2 interface
definitions exactly, so the conversion is field by field and the embedded CDR
bytes equal those of ROS 2 (a test checks them against rosbags).

Scalar field types are written `Annotated[python type, ros primitive]`; lists are
ROS unbounded sequences.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Annotated, Any, ClassVar

int32 = Annotated[int, "int32"]
uint32 = Annotated[int, "uint32"]
float64 = Annotated[float, "float64"]
uint8 = Annotated[int, "uint8"]
int64 = Annotated[int, "int64"]
uint64 = Annotated[int, "uint64"]
boolean = Annotated[bool, "bool"]
octet = Annotated[int, "byte"]
"""ROS `byte` (IDL octet): one unsigned byte, typed apart from uint8 in type descriptions."""


@dataclasses.dataclass(frozen=True)
class Bounded:
    """`Annotated[str, Bounded(n)]` is ROS `string<=n`; `Annotated[list[T], Bounded(n)]` is `T[<=n]`.

    On the wire a bound changes nothing (CDR writes the length as for unbounded ones); it is part
    of the type's description, and so of its type hash (`tdm_control.ros.type_hash`).
    """

    size: int


@dataclasses.dataclass(frozen=True)
class Fixed:
    """`Annotated[list[T], Fixed(n)]` is the ROS array `T[n]`: exactly n items, written without a length."""

    size: int


def unwrap(annotation: Any) -> tuple[Any, Bounded | Fixed | None]:
    """A field annotation without its `Bounded`/`Fixed` marker, and the marker (None without one)."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        if extras and isinstance(extras[0], (Bounded, Fixed)):
            return base, extras[0]
    return annotation, None

NANOSECONDS_PER_SECOND = 1_000_000_000


@dataclasses.dataclass
class _SecondsNanoseconds:
    """Seconds plus nanoseconds, the layout builtin_interfaces/Time and Duration share."""

    sec: int32 = 0
    nanosec: uint32 = 0

    @classmethod
    def from_ns(cls, nanoseconds: int):
        """The value of `nanoseconds` (an int, >= 0)."""
        sec, nanosec = divmod(int(nanoseconds), NANOSECONDS_PER_SECOND)
        return cls(sec=sec, nanosec=nanosec)

    def to_ns(self) -> int:
        """The value in nanoseconds, exact."""
        return self.sec * NANOSECONDS_PER_SECOND + self.nanosec


@dataclasses.dataclass
class Time(_SecondsNanoseconds):
    """builtin_interfaces/Time: a point in time since the clock's zero."""

    ros_type: ClassVar[str] = "builtin_interfaces/msg/Time"


@dataclasses.dataclass
class Duration(_SecondsNanoseconds):
    """builtin_interfaces/Duration: a span of time."""

    ros_type: ClassVar[str] = "builtin_interfaces/msg/Duration"


@dataclasses.dataclass
class Header:
    """std_msgs/Header: when (and in which frame) the data was measured."""

    ros_type: ClassVar[str] = "std_msgs/msg/Header"
    stamp: Time = dataclasses.field(default_factory=Time)
    frame_id: str = ""


@dataclasses.dataclass
class JointState:
    """sensor_msgs/JointState: positions (m or rad), velocities (m/s or rad/s), efforts (N or N·m) by joint name."""

    ros_type: ClassVar[str] = "sensor_msgs/msg/JointState"
    header: Header = dataclasses.field(default_factory=Header)
    name: list[str] = dataclasses.field(default_factory=list)
    position: list[float64] = dataclasses.field(default_factory=list)
    velocity: list[float64] = dataclasses.field(default_factory=list)
    effort: list[float64] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class MultiArrayDimension:
    """std_msgs/MultiArrayDimension: one dimension of a multi-array."""

    ros_type: ClassVar[str] = "std_msgs/msg/MultiArrayDimension"
    label: str = ""
    size: uint32 = 0
    stride: uint32 = 0


@dataclasses.dataclass
class MultiArrayLayout:
    """std_msgs/MultiArrayLayout: how a multi-array's flat data is laid out."""

    ros_type: ClassVar[str] = "std_msgs/msg/MultiArrayLayout"
    dim: list[MultiArrayDimension] = dataclasses.field(default_factory=list)
    data_offset: uint32 = 0


@dataclasses.dataclass
class Float64MultiArray:
    """std_msgs/Float64MultiArray: the ros2_control effort command (N·m), and the planner's diagnostics."""

    ros_type: ClassVar[str] = "std_msgs/msg/Float64MultiArray"
    layout: MultiArrayLayout = dataclasses.field(default_factory=MultiArrayLayout)
    data: list[float64] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Float64:
    """std_msgs/Float64: one number (the task reward of a step)."""

    ros_type: ClassVar[str] = "std_msgs/msg/Float64"
    data: float64 = 0.0


@dataclasses.dataclass
class Int32:
    """std_msgs/Int32: one integer (the index of the running episode)."""

    ros_type: ClassVar[str] = "std_msgs/msg/Int32"
    data: int32 = 0


@dataclasses.dataclass
class Empty:
    """std_msgs/Empty: a trigger (episode reset requests)."""

    ros_type: ClassVar[str] = "std_msgs/msg/Empty"


@dataclasses.dataclass
class Clock:
    """rosgraph_msgs/Clock: the simulation time, published on /clock for nodes with use_sim_time."""

    ros_type: ClassVar[str] = "rosgraph_msgs/msg/Clock"
    clock: Time = dataclasses.field(default_factory=Time)


@dataclasses.dataclass
class JointTrajectoryPoint:
    """trajectory_msgs/JointTrajectoryPoint: one point of a trajectory, `time_from_start` after its header stamp.

    The planner fills `effort` only (N·m, N for slide joints, in `joint_names` order).
    """

    ros_type: ClassVar[str] = "trajectory_msgs/msg/JointTrajectoryPoint"
    positions: list[float64] = dataclasses.field(default_factory=list)
    velocities: list[float64] = dataclasses.field(default_factory=list)
    accelerations: list[float64] = dataclasses.field(default_factory=list)
    effort: list[float64] = dataclasses.field(default_factory=list)
    time_from_start: Duration = dataclasses.field(default_factory=Duration)


@dataclasses.dataclass
class JointTrajectory:
    """trajectory_msgs/JointTrajectory: the plan the planner executes (header stamp: the state it starts from)."""

    ros_type: ClassVar[str] = "trajectory_msgs/msg/JointTrajectory"
    header: Header = dataclasses.field(default_factory=Header)
    joint_names: list[str] = dataclasses.field(default_factory=list)
    points: list[JointTrajectoryPoint] = dataclasses.field(default_factory=list)


MESSAGES: tuple[type, ...] = (Time, Duration, Header, JointState, MultiArrayDimension, MultiArrayLayout,
                              Float64MultiArray, Float64, Int32, Empty, Clock, JointTrajectoryPoint, JointTrajectory)
"""Every message type the package sends or receives (the wire-compatibility test covers each)."""


def vector(values, label: str = "") -> Float64MultiArray:
    """A one-dimensional Float64MultiArray holding `values` as float64, its one dimension labelled."""
    data = [float(v) for v in values]
    return Float64MultiArray(
        layout=MultiArrayLayout(dim=[MultiArrayDimension(label=label, size=len(data), stride=len(data))]),
        data=data)


@functools.cache
def field_types(message_type: type) -> dict[str, Any]:
    """The field annotations of a message dataclass, `Annotated` primitives kept.

    Cached: transports convert every message through them, and `typing.get_type_hints`
    costs about 0.1 ms a class (a 75-point JointTrajectory took 13 ms to convert without it).
    """
    return typing.get_type_hints(message_type, include_extras=True)


def from_fields(source: Any, message_type: type) -> Any:
    """The message `message_type` read field by field from an object with the same fields.

    Transports use it to turn what they received (an IDL struct, a rosidl message)
    into the dataclass; sequences become lists.
    """
    hints = field_types(message_type)
    values = {}
    for field in dataclasses.fields(message_type):
        annotation, value = unwrap(hints[field.name])[0], getattr(source, field.name)
        if dataclasses.is_dataclass(annotation):
            value = from_fields(value, annotation)
        elif typing.get_origin(annotation) is list:
            (item,) = typing.get_args(annotation)
            value = [from_fields(v, item) for v in value] if dataclasses.is_dataclass(item) else list(value)
        values[field.name] = value
    return message_type(**values)
