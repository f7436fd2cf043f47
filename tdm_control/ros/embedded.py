"""The embedded transport: ROS 2 over Cyclone DDS (`cyclonedds` from PyPI), without a ROS 2 install.

It speaks what rmw_cyclonedds speaks: topic '/x' is DDS topic 'rt/x', message
`pkg/msg/T` is DDS type `pkg::msg::dds_::T_`, payloads are little-endian CDR.
With CYCLONEDDS_URI unset, discovery is confined to this machine (loopback,
unicast peers) and needs no network configuration; ROS_DOMAIN_ID is respected.

Callbacks run on the thread that spins, in the order the messages were sent
(by source timestamp) across all subscriptions, so a message on one topic is
never handled before an earlier one on another.
"""

from __future__ import annotations

import dataclasses
import os
import time
import types
import typing
from typing import Any, Callable, Sequence

from tdm_control.config import ConfigError
from tdm_control.ros import messages
from tdm_control.ros.params import fully_qualified_name, node_parameters, parse_ros_args
from tdm_control.ros.transport import CLOCK, Logger, Node, Publisher, QoS, Subscription, resolve_topic

try:
    from cyclonedds.core import InstanceState, Policy, Qos, ReadCondition, SampleState, ViewState, WaitSet
    from cyclonedds.domain import Domain, DomainParticipant
    from cyclonedds.idl import IdlStruct
    from cyclonedds.idl import types as idl
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(f"the embedded ROS 2 transport needs the 'cyclonedds' package ({e}); "
                      "install it with: pip install -e '.[ros]'") from e

DOMAIN_ID_ENV = "ROS_DOMAIN_ID"
MAX_DOMAIN_ID = 232
"""Highest domain id whose ports fit the default DDSI port mapping."""
MAX_PARTICIPANTS = 32
"""Participants (processes with a node) one machine can have per domain with loopback discovery."""
RELIABLE_MAX_BLOCKING_NS = 100_000_000
"""How long a reliable write may block on a full history, in ns (rmw_cyclonedds uses 100 ms too)."""
MAX_WAIT_S = 0.1
"""Longest a spin waits in one go, so that SIGINT and shutdown requests are seen promptly."""

LOCALHOST_CONFIG = f"""<CycloneDDS xmlns="https://cdds.io/config"><Domain Id="any">
  <General>
    <Interfaces><NetworkInterface address="127.0.0.1"/></Interfaces>
    <AllowMulticast>false</AllowMulticast>
  </General>
  <Discovery>
    <ParticipantIndex>auto</ParticipantIndex>
    <MaxAutoParticipantIndex>{MAX_PARTICIPANTS}</MaxAutoParticipantIndex>
    <Peers><Peer Address="127.0.0.1"/></Peers>
  </Discovery>
</Domain></CycloneDDS>"""
"""Discovery on this machine only: unicast to the ports of participant indices 0..MAX_PARTICIPANTS on
the loopback interface. Needs no multicast, so it works in containers and CI without network set-up."""

_PRIMITIVES = {"int32": idl.int32, "uint32": idl.uint32, "float64": idl.float64}
_domains: dict[int, tuple[Any, str]] = {}
_idl_types: dict[type, type] = {}


# ----------------------------------------------------------------------------- types
def dds_type_name(message_type: type) -> str:
    """'sensor_msgs/msg/JointState' -> 'sensor_msgs::msg::dds_::JointState_' (the rmw naming)."""
    package, kind, name = message_type.ros_type.split("/")
    return f"{package}::{kind}::dds_::{name}_"


def _idl_field(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        base, primitive = typing.get_args(annotation)
        return _PRIMITIVES[primitive]
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return idl.sequence[_idl_field(item)]
    if annotation is str:
        return str
    if dataclasses.is_dataclass(annotation):
        return idl_type(annotation)
    raise TypeError(f"no IDL mapping for field type {annotation!r}")


def idl_type(message_type: type) -> type:
    """The Cyclone DDS IDL struct of a message dataclass (built once, cached).

    A message without fields gets rosidl's placeholder member
    `uint8 structure_needs_at_least_one_member`, as on the wire in ROS 2.
    """
    if message_type in _idl_types:
        return _idl_types[message_type]
    hints = messages.field_types(message_type)
    annotations = {f.name: _idl_field(hints[f.name]) for f in dataclasses.fields(message_type)}
    if not annotations:
        annotations = {"structure_needs_at_least_one_member": idl.uint8}
    cls = types.new_class(f"{message_type.__name__}_", (IdlStruct,), {"typename": dds_type_name(message_type)},
                          lambda ns: ns.update({"__annotations__": annotations}))
    cls = dataclasses.dataclass(cls)
    _idl_types[message_type] = cls
    return cls


def _to_idl_value(value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base = typing.get_args(annotation)[0]
        return base(value)
    if origin is list:
        (item,) = typing.get_args(annotation)
        return [_to_idl_value(v, item) for v in value]
    if dataclasses.is_dataclass(annotation):
        return to_idl(value)
    return value


def to_idl(message: Any) -> Any:
    """A message dataclass as its IDL struct (sequences become lists of Python scalars)."""
    cls = type(message)
    hints = messages.field_types(cls)
    fields = {f.name: _to_idl_value(getattr(message, f.name), hints[f.name]) for f in dataclasses.fields(cls)}
    if not fields:
        fields = {"structure_needs_at_least_one_member": 0}
    return idl_type(cls)(**fields)


def serialize(message: Any) -> bytes:
    """The CDR bytes (4-byte encapsulation header, little-endian) this transport puts on the wire for `message`,
    before DDS pads them to a multiple of 4 bytes."""
    return to_idl(message).serialize()


# ----------------------------------------------------------------------------- domain
def domain_settings(environ: dict[str, str] | None = None) -> tuple[int, str | None, str]:
    """The DDS domain id, the Cyclone DDS configuration to use, and a sentence for the log.

    Returns:
      (domain id from ROS_DOMAIN_ID, default 0; the XML configuration, or None to
      leave Cyclone DDS to CYCLONEDDS_URI or its defaults; the description).
    """
    env = os.environ if environ is None else environ
    text = env.get(DOMAIN_ID_ENV, "").strip() or "0"
    try:
        domain_id = int(text)
    except ValueError:
        raise ConfigError(f"{DOMAIN_ID_ENV}={text!r} is not an integer") from None
    if not 0 <= domain_id <= MAX_DOMAIN_ID:
        raise ConfigError(f"{DOMAIN_ID_ENV}={domain_id} is outside 0..{MAX_DOMAIN_ID}")
    if env.get("CYCLONEDDS_URI"):
        return domain_id, None, f"domain {domain_id}, Cyclone DDS configured by CYCLONEDDS_URI"
    if env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").upper() == "SUBNET":
        return domain_id, None, (f"domain {domain_id}, Cyclone DDS defaults (multicast discovery on the subnet, "
                                 "ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET)")
    return domain_id, LOCALHOST_CONFIG, (f"domain {domain_id}, discovery on this machine only (loopback, "
                                         "unicast peers); set CYCLONEDDS_URI or "
                                         "ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET to reach other machines")


def _open_domain() -> tuple[int, str]:
    domain_id, config, description = domain_settings()
    if domain_id not in _domains:
        domain = Domain(domain_id, config) if config is not None else None
        _domains[domain_id] = (domain, description)
    return domain_id, _domains[domain_id][1]


def dds_qos(qos: QoS) -> Any:
    """The Cyclone DDS QoS of a ROS 2 profile (keep-last history)."""
    reliability = (Policy.Reliability.Reliable(RELIABLE_MAX_BLOCKING_NS) if qos.reliable
                   else Policy.Reliability.BestEffort)
    durability = Policy.Durability.TransientLocal if qos.transient_local else Policy.Durability.Volatile
    return Qos(reliability, durability, Policy.History.KeepLast(qos.depth))


# ----------------------------------------------------------------------------- node
class EmbeddedPublisher(Publisher):
    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def publish(self, message: Any) -> None:
        self._writer.write(to_idl(message))

    @property
    def subscription_count(self) -> int:
        return len(self._writer.get_matched_subscriptions())


@dataclasses.dataclass
class _Subscription(Subscription):
    reader: Any
    message_type: type
    callback: Callable[[Any], None]
    topic: str

    @property
    def publisher_count(self) -> int:
        return len(self.reader.get_matched_publications())


@dataclasses.dataclass
class _Timer:
    period_s: float
    due: float
    callback: Callable[[], None]


@dataclasses.dataclass
class _RosTimer:
    """A timer on the node's clock (ns): /clock under use_sim_time, system time otherwise."""

    period_ns: int
    due_ns: int | None
    """None until the clock is known (under use_sim_time: until the first /clock); then it fires at once."""
    callback: Callable[[], None]

    def due(self, now_ns: int) -> bool:
        """Whether it fires at `now_ns`; if so, moves on to the next period."""
        if self.due_ns is None or now_ns < self.due_ns - self.period_ns:
            self.due_ns = now_ns  # the first time known, or the clock went back: start over
        if now_ns < self.due_ns:
            return False
        behind = now_ns - self.due_ns
        self.due_ns = self.due_ns + self.period_ns if behind < self.period_ns else now_ns + self.period_ns
        return True


class EmbeddedNode(Node):
    """A ROS 2 node on one Cyclone DDS participant (one per node, like rmw_cyclonedds per context)."""

    transport = "embedded"

    def __init__(self, name: str, argv: Sequence[str] = ()) -> None:
        ros = parse_ros_args(argv)
        self.name = ros.node_name or name
        self.namespace = ros.namespace or ""
        self.remaps = ros.remaps
        self.logger = Logger(self.name, ros.log_level or "info")
        self.extra_arguments = ros.other
        self.parameters = node_parameters(ros, fully_qualified_name(self.name, self.namespace))
        use_sim_time = self.parameters.get("use_sim_time", False)
        if not isinstance(use_sim_time, bool):
            raise ConfigError(f"use_sim_time: expected true or false, got {use_sim_time!r}")
        self.use_sim_time = use_sim_time
        self.domain_id, self._domain_description = _open_domain()
        self._participant = DomainParticipant(self.domain_id)
        self._waitset = WaitSet(self._participant)
        self._topics: dict[str, Any] = {}
        self._subscriptions: list[_Subscription] = []
        self._timers: list[_Timer] = []
        self._ros_timers: list[_RosTimer] = []
        self._sim_time_ns = 0
        self._clock_received = False
        if self.use_sim_time:
            self.create_subscription(messages.Clock, "/clock", self._on_clock, CLOCK)

    def describe_transport(self) -> str:
        return f", {self._domain_description}"

    def resolve(self, topic: str) -> str:
        return resolve_topic(topic, self.name, self.namespace, self.remaps)

    def _topic(self, message_type: type, topic: str) -> tuple[Any, str]:
        name = self.resolve(topic)
        if name not in self._topics:
            self._topics[name] = Topic(self._participant, "rt" + name, idl_type(message_type))
        return self._topics[name], name

    def create_publisher(self, message_type: type, topic: str, qos: QoS) -> Publisher:
        dds_topic, _ = self._topic(message_type, topic)
        return EmbeddedPublisher(DataWriter(self._participant, dds_topic, dds_qos(qos)))

    def create_subscription(self, message_type: type, topic: str, callback: Callable[[Any], None],
                            qos: QoS) -> Subscription:
        dds_topic, name = self._topic(message_type, topic)
        reader = DataReader(self._participant, dds_topic, dds_qos(qos))
        self._waitset.attach(ReadCondition(reader, SampleState.Any | ViewState.Any | InstanceState.Any))
        subscription = _Subscription(reader, message_type, self.guard(callback), name)
        self._subscriptions.append(subscription)
        return subscription

    def create_timer(self, period_s: float, callback: Callable[[], None], ros_time: bool = False) -> None:
        if period_s <= 0:
            raise ValueError(f"timer period must be > 0 s, got {period_s}")
        if ros_time:
            due = None if self.use_sim_time else self.now_ns() + round(period_s * 1e9)
            self._ros_timers.append(_RosTimer(round(period_s * 1e9), due, self.guard(callback)))
        else:
            self._timers.append(_Timer(period_s, time.monotonic() + period_s, self.guard(callback)))

    def now_ns(self) -> int:
        return self._sim_time_ns if self.use_sim_time else time.time_ns()

    def _on_clock(self, message: messages.Clock) -> None:
        self._sim_time_ns = message.clock.to_ns()
        self._clock_received = True

    def _take_all(self) -> list[tuple[int, int, _Subscription, Any]]:
        batch = []
        for order, sub in enumerate(self._subscriptions):
            while True:
                try:
                    samples = sub.reader.take(N=64)
                except Exception as e:  # noqa: BLE001 - a sample that cannot be decoded is reported, not fatal
                    self.logger.error(f"{sub.topic}: could not decode a message: {e}", throttle_s=1.0)
                    break
                for sample in samples:
                    info = sample.sample_info
                    if info.valid_data:  # skip instance-state notifications (a writer went away)
                        batch.append((info.source_timestamp, order, sub, sample))
                if len(samples) < 64:
                    break
        batch.sort(key=lambda item: (item[0], item[1]))
        return batch

    def spin_once(self, timeout_s: float) -> None:
        now = time.monotonic()
        wait = min(timeout_s, MAX_WAIT_S)
        if self._timers:
            wait = min(wait, min(t.due for t in self._timers) - now)
        if self._ros_timers and not self.use_sim_time:  # under sim time, only a /clock message moves them
            wait = min(wait, (min(t.due_ns for t in self._ros_timers) - self.now_ns()) * 1e-9)
        if wait > 0:
            self._waitset.wait(int(wait * 1e9))
        for _, _, sub, sample in self._take_all():
            sub.callback(messages.from_fields(sample, sub.message_type))
        now = time.monotonic()
        for timer in self._timers:
            if now >= timer.due:
                # Keep the rate: the next tick is one period after this one was due, unless
                # the node fell more than a period behind (then it restarts from now).
                timer.due = timer.due + timer.period_s if now - timer.due < timer.period_s else now + timer.period_s
                timer.callback()
        if self._ros_timers and (self._clock_received or not self.use_sim_time):
            now_ns = self.now_ns()
            for ros_timer in self._ros_timers:
                if ros_timer.due(now_ns):
                    ros_timer.callback()

    def close(self) -> None:
        self._subscriptions.clear()
        self._timers.clear()
        self._ros_timers.clear()
        participant, self._participant = self._participant, None
        if participant is not None:
            # cyclonedds keeps every entity in a registry, so dropping the reference deletes
            # nothing: delete the participant (and its readers and writers) explicitly, which
            # also tells the peers at once that this node has left.
            participant.__del__()
