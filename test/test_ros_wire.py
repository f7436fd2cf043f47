"""Wire compatibility: the embedded transport's bytes are ROS 2's bytes (checked with rosbags).

For every message type the nodes use, the CDR payload the embedded transport
writes equals rosbags' serialisation in the ROS 2 Humble and Jazzy typestores,
rosbags decodes it back to the same values, and the bytes that actually travel
through DDS (captured raw by a reader on the `rt/` topic) are those bytes.
"""

import ast
import dataclasses
import math
import os
import typing

import numpy as np
import pytest
from ros_helpers import ros_domain  # noqa: F401 (fixture)
from rosbags.typesys import Stores, get_typestore

from tdm_control.ros import messages as m
from tdm_control.ros.embedded import EmbeddedNode, dds_type_name, idl_type, serialize
from tdm_control.ros.transport import COMMANDS

STORES = (Stores.ROS2_HUMBLE, Stores.ROS2_JAZZY)

# rmw_cyclonedds' DDS type names, written out (not computed) so the test checks the naming rule.
DDS_NAMES = {
    m.Time: "builtin_interfaces::msg::dds_::Time_",
    m.Header: "std_msgs::msg::dds_::Header_",
    m.JointState: "sensor_msgs::msg::dds_::JointState_",
    m.MultiArrayDimension: "std_msgs::msg::dds_::MultiArrayDimension_",
    m.MultiArrayLayout: "std_msgs::msg::dds_::MultiArrayLayout_",
    m.Float64MultiArray: "std_msgs::msg::dds_::Float64MultiArray_",
    m.Float64: "std_msgs::msg::dds_::Float64_",
    m.Int32: "std_msgs::msg::dds_::Int32_",
    m.Empty: "std_msgs::msg::dds_::Empty_",
    m.Clock: "rosgraph_msgs::msg::dds_::Clock_",
    m.Duration: "builtin_interfaces::msg::dds_::Duration_",
    m.JointTrajectoryPoint: "trajectory_msgs::msg::dds_::JointTrajectoryPoint_",
    m.JointTrajectory: "trajectory_msgs::msg::dds_::JointTrajectory_",
}

STAMP = m.Time(sec=1_700_000_123, nanosec=456_789_012)


def samples():
    """One message of every type, with values that exercise alignment, signs and odd lengths."""
    return {
        m.Time: STAMP,
        m.Header: m.Header(stamp=STAMP, frame_id="base_link"),
        m.JointState: m.JointState(header=m.Header(stamp=STAMP, frame_id=""), name=["slider", "hinge_1", "é"],
                                   position=[0.125, -3.0e-7, math.pi], velocity=[1.0, -2.5, 1e300],
                                   effort=[]),
        m.MultiArrayDimension: m.MultiArrayDimension(label="joints", size=3, stride=3),
        m.MultiArrayLayout: m.MultiArrayLayout(dim=[m.MultiArrayDimension("a", 2, 6),
                                                    m.MultiArrayDimension("bc", 3, 3)], data_offset=1),
        m.Float64MultiArray: m.vector([-10.0, 0.1, 5e-324], "stamp_s,planning_latency_s,predicted_return"),
        m.Float64: m.Float64(data=-0.7071067811865476),
        m.Int32: m.Int32(data=-123456),
        m.Empty: m.Empty(),
        m.Clock: m.Clock(clock=m.Time(sec=12, nanosec=340_000_000)),
        m.Duration: m.Duration(sec=-3, nanosec=999_999_999),
        m.JointTrajectoryPoint: m.JointTrajectoryPoint(positions=[0.5], velocities=[], accelerations=[-1e-9, 2.0],
                                                       effort=[-1.25, 7.0, 0.0], time_from_start=m.Duration(1, 20)),
        m.JointTrajectory: m.JointTrajectory(
            header=m.Header(stamp=STAMP, frame_id=""), joint_names=["slider", "hinge_1", "é"],
            points=[m.JointTrajectoryPoint(effort=[0.125, -3.5, 1e300], time_from_start=m.Duration.from_ns(0)),
                    m.JointTrajectoryPoint(effort=[-0.0, 2.0, -7.0], time_from_start=m.Duration.from_ns(20_000_000))]),
    }


def test_every_message_type_used_has_a_sample():
    assert set(samples()) == set(m.MESSAGES) == set(DDS_NAMES)
    # ...and the nodes use no message type outside MESSAGES.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for path in ("sim_bridge/bridge_node.py", "tdm_control/nodes/planner_node.py", "tdm_control/ros/embedded.py"):
        tree = ast.parse(open(os.path.join(root, path)).read())
        used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name) and node.value.id in ("msg", "messages")}
        used = {getattr(m, name) for name in used if isinstance(getattr(m, name, None), type)}
        assert used and used <= set(m.MESSAGES), (path, used - set(m.MESSAGES))


def rosbags_message(typestore, message):
    """The same message built from rosbags' own type definitions."""
    cls = typestore.types[message.ros_type]
    hints = typing.get_type_hints(type(message))
    values = {}
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        if dataclasses.is_dataclass(value):
            value = rosbags_message(typestore, value)
        elif hints[field.name] == list[float]:  # float64[]: rosbags holds numpy arrays
            value = np.array(value, dtype=np.float64)
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            value = [rosbags_message(typestore, v) for v in value]
        values[field.name] = value
    if not values and message.ros_type == "std_msgs/msg/Empty":
        values["structure_needs_at_least_one_member"] = 0
    return cls(**values)


def same_values(ours, theirs) -> bool:
    for field in dataclasses.fields(ours):
        a, b = getattr(ours, field.name), getattr(theirs, field.name)
        if dataclasses.is_dataclass(a):
            if not same_values(a, b):
                return False
        elif isinstance(a, list) and a and dataclasses.is_dataclass(a[0]):
            if len(a) != len(b) or not all(same_values(x, y) for x, y in zip(a, b)):
                return False
        elif isinstance(a, list):
            if list(a) != list(b):
                return False
        elif a != b:
            return False
    return True


@pytest.mark.parametrize("store", STORES, ids=lambda s: s.name)
def test_bytes_equal_rosbags_and_decode_back(store):
    typestore = get_typestore(store)
    for message in samples().values():
        ours = serialize(message)
        theirs = bytes(typestore.serialize_cdr(rosbags_message(typestore, message), message.ros_type))
        assert ours[:4] == b"\x00\x01\x00\x00", f"{message.ros_type}: not little-endian plain CDR"
        assert ours == theirs, f"{message.ros_type}: {ours.hex()} != rosbags {theirs.hex()}"
        decoded = typestore.deserialize_cdr(ours, message.ros_type)
        assert same_values(message, decoded), f"{message.ros_type}: rosbags decoded {decoded}"


def test_dds_type_names_follow_rmw():
    for message_type, name in DDS_NAMES.items():
        assert dds_type_name(message_type) == name
        assert idl_type(message_type).__idl_typename__ == name


def test_bytes_on_the_wire(ros_domain):  # noqa: F811
    """Publish through the embedded transport, capture the raw payloads from DDS topic rt/<name>."""
    from cyclonedds._clayer import ddspy_take
    from cyclonedds.core import InstanceState, SampleState, ViewState
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from ros_helpers import spin_until

    from tdm_control.ros.embedded import dds_qos

    typestore = get_typestore(Stores.ROS2_JAZZY)
    node = EmbeddedNode("wire_test", [])
    participant = DomainParticipant(ros_domain)
    try:
        for message_type, message in samples().items():
            topic = f"wire_test/{message_type.__name__.lower()}"
            reader = DataReader(participant, Topic(participant, f"rt/{topic}", idl_type(message_type)),
                                dds_qos(COMMANDS))
            publisher = node.create_publisher(message_type, f"/{topic}", COMMANDS)
            spin_until(node, lambda: publisher.subscription_count > 0, what=f"a reader on rt/{topic}")
            publisher.publish(message)
            taken = []
            mask = SampleState.Any | ViewState.Any | InstanceState.Any

            def received():
                taken.extend(ddspy_take(reader._ref, mask, 10))
                return bool(taken)

            spin_until(node, received, what=f"the {message.ros_type} on rt/{topic}")
            (raw, info), = taken
            expected = bytes(typestore.serialize_cdr(rosbags_message(typestore, message), message.ros_type))
            # DDS pads the payload with zeros to a multiple of 4 bytes; the message is the prefix.
            assert raw[:len(expected)] == expected, message.ros_type
            assert raw[len(expected):] == b"\x00" * (len(raw) - len(expected)) and len(raw) % 4 == 0
            assert same_values(message, typestore.deserialize_cdr(raw, message.ros_type))
    finally:
        node.close()
