"""An adversarial ROS 2 participant for the fault tests, written against the wire format alone.

It shares no code with the project's transport or messages: its types are Cyclone DDS IDL
structs written out here from the ROS 2 message definitions, named as rmw_cyclonedds names
them (topic `rt/<name>`, type `<pkg>::msg::dds_::<Type>_`), and its discovery configuration is
its own (as a Jazzy node's). So a fault in the project's encoding or discovery cannot hide itself from these tests.
(No `from __future__ import annotations` here: cyclonedds reads the field types at run time.)
"""

import dataclasses
import os
import time
from typing import Any, Callable

import pytest
from cyclonedds.core import Policy, Qos
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import float64, int32, sequence, uint8, uint32
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

DEADLINE_S = 60.0
"""How long to wait for something that normally takes well under a second (2 shared cores)."""

LOCALHOST = """<CycloneDDS xmlns="https://cdds.io/config"><Domain Id="any">
  <General><AllowMulticast>false</AllowMulticast></General>
  <Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>
    <Peers><Peer Address="localhost"/></Peers></Discovery>
</Domain></CycloneDDS>"""
SUBNET = """<CycloneDDS xmlns="https://cdds.io/config"><Domain Id="any">
  <Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>
  </Discovery>
</Domain></CycloneDDS>"""
"""Discovery as a ROS 2 Jazzy node configures it (rmw_cyclonedds), for ROS_AUTOMATIC_DISCOVERY_RANGE
LOCALHOST and for the default, SUBNET (multicast)."""


def discovery_config() -> str:
    return LOCALHOST if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").upper() == "LOCALHOST" else SUBNET


# ROS 2 messages (rosidl definitions of Humble/Jazzy), as DDS sees them.
@dataclasses.dataclass
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32
    nanosec: uint32


@dataclasses.dataclass
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time
    frame_id: str


@dataclasses.dataclass
class JointState(IdlStruct, typename="sensor_msgs::msg::dds_::JointState_"):
    header: Header
    name: sequence[str]
    position: sequence[float64]
    velocity: sequence[float64]
    effort: sequence[float64]


@dataclasses.dataclass
class MultiArrayDimension(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayDimension_"):
    label: str
    size: uint32
    stride: uint32


@dataclasses.dataclass
class MultiArrayLayout(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayLayout_"):
    dim: sequence[MultiArrayDimension]
    data_offset: uint32


@dataclasses.dataclass
class Float64MultiArray(IdlStruct, typename="std_msgs::msg::dds_::Float64MultiArray_"):
    layout: MultiArrayLayout
    data: sequence[float64]


@dataclasses.dataclass
class Int32(IdlStruct, typename="std_msgs::msg::dds_::Int32_"):
    data: int32


@dataclasses.dataclass
class Empty(IdlStruct, typename="std_msgs::msg::dds_::Empty_"):
    structure_needs_at_least_one_member: uint8


@dataclasses.dataclass
class String(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str


SENSOR = Qos(Policy.Reliability.BestEffort, Policy.Durability.Volatile, Policy.History.KeepLast(5))
RELIABLE = Qos(Policy.Reliability.Reliable(100_000_000), Policy.Durability.Volatile, Policy.History.KeepLast(10))
INBOX = Qos(Policy.Reliability.Reliable(100_000_000), Policy.Durability.Volatile, Policy.History.KeepLast(100_000))
"""A reader that keeps all it is sent (its tests count messages)."""
LATCHED = Qos(Policy.Reliability.Reliable(100_000_000), Policy.Durability.TransientLocal, Policy.History.KeepLast(1))

_domains: dict[int, Any] = {}


def joint_state(stamp_ns: int, names, positions, velocities, sec: int | None = None) -> JointState:
    """A JointState stamped `stamp_ns` (or with a raw `sec` field, for stamps no time in ns gives)."""
    stamp = Time(sec=stamp_ns // 1_000_000_000 if sec is None else sec, nanosec=stamp_ns % 1_000_000_000)
    return JointState(header=Header(stamp=stamp, frame_id=""), name=list(names), position=[float(x) for x in positions],
                      velocity=[float(x) for x in velocities], effort=[0.0] * len(positions))


def command(values) -> Float64MultiArray:
    return Float64MultiArray(layout=MultiArrayLayout(dim=[], data_offset=0), data=[float(x) for x in values])


class Adversary:
    """One DDS participant on domain `domain_id` that writes and reads ROS 2 topics as told."""

    def __init__(self, domain_id: int) -> None:
        if domain_id not in _domains:
            _domains[domain_id] = Domain(domain_id, discovery_config())
        self.participant = DomainParticipant(domain_id)
        self._topics: dict[str, Any] = {}

    def _topic(self, name: str, kind: type) -> Any:
        if name not in self._topics:
            self._topics[name] = Topic(self.participant, "rt" + name, kind)
        return self._topics[name]

    def writer(self, name: str, kind: type, qos: Any = RELIABLE) -> DataWriter:
        return DataWriter(self.participant, self._topic(name, kind), qos)

    def reader(self, name: str, kind: type, qos: Any = RELIABLE) -> DataReader:
        return DataReader(self.participant, self._topic(name, kind), qos)

    def close(self) -> None:
        participant, self.participant = self.participant, None
        if participant is not None:
            participant.__del__()  # cyclonedds keeps entities in a registry: delete explicitly


class Inbox:
    """Everything a reader received, taken as it comes."""

    def __init__(self, reader: DataReader) -> None:
        self.reader = reader
        self.messages: list[Any] = []

    def poll(self) -> list[Any]:
        self.messages += [s for s in self.reader.take(N=256) if s.sample_info.valid_data]
        return self.messages

    def wait(self, condition: Callable[[list[Any]], bool], what: str, timeout: float = DEADLINE_S) -> list[Any]:
        deadline = time.monotonic() + timeout
        while not condition(self.poll()):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.01)
        return self.messages


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
