"""The embedded transport: ROS 2 over Cyclone DDS (`cyclonedds` from PyPI), without a ROS 2 install.

It speaks what rmw_cyclonedds speaks: topic '/x' is DDS topic 'rt/x', message
`pkg/msg/T` is DDS type `pkg::msg::dds_::T_`, payloads are little-endian CDR.
Discovery is configured as ROS 2 Jazzy configures it from ROS_DOMAIN_ID,
ROS_AUTOMATIC_DISCOVERY_RANGE, ROS_STATIC_PEERS and CYCLONEDDS_URI
(`tdm_control.ros.discovery`).

Besides its topics, a node takes part in the ROS 2 graph as an rmw node does, unless
TDM_ROS_GRAPH=off: it announces itself and its readers and writers on
`ros_discovery_info` (`graph`), publishes its log lines on /rosout (`rosout`), and
serves its parameters with the rcl_interfaces services and /parameter_events
(`param_services`, `services`), with rmw_cyclonedds' USER_DATA on every entity.

Callbacks run on the thread that spins, in the order the messages were sent
(by source timestamp) across all subscriptions, so a message on one topic is
never handled before an earlier one on another.
"""

from __future__ import annotations

import dataclasses
import time
import types
import typing
from typing import Any, Callable, Sequence

from tdm_control.config import ConfigError
from tdm_control.ros import messages
from tdm_control.ros.discovery import (  # noqa: F401 - DOMAIN_ID_ENV, MAX_DOMAIN_ID: re-exported
    DOMAIN_ID_ENV,
    MAX_AUTO_PARTICIPANT_INDEX,
    MAX_DOMAIN_ID,
    Discovery,
    discovery_settings,
)
from tdm_control.ros.graph import (
    GRAPH_ENV,
    REPLY_PREFIX,
    REPLY_SUFFIX,
    REQUEST_PREFIX,
    REQUEST_SUFFIX,
    GraphAnnouncer,
    endpoint_user_data,
    graph_enabled,
    participant_user_data,
    service_id,
)
from tdm_control.ros.interfaces import PARAMETER_SERVICES, Log, ParameterEvent, ServiceType
from tdm_control.ros.messages import Bounded, Fixed, unwrap
from tdm_control.ros.param_services import (
    PARAMETER_EVENTS_DEPTH,
    PARAMETER_EVENTS_TOPIC,
    ParameterServer,
)
from tdm_control.ros.params import (
    fully_qualified_name,
    node_parameters,
    parse_ros_args,
    shadowed_overrides,
    wildcard_names,
)
from tdm_control.ros.rosout import ROSOUT_DEPTH, ROSOUT_LIFESPAN_NS, ROSOUT_TOPIC, RosoutLogger, logger_name
from tdm_control.ros.services import SERVICE_QOS, ServiceServer, framed
from tdm_control.ros.transport import CLOCK, Node, Publisher, QoS, Subscription, resolve_topic

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

MAX_PARTICIPANTS = MAX_AUTO_PARTICIPANT_INDEX
"""Participants (processes with a node) one machine can have per domain (rmw's MaxAutoParticipantIndex)."""
RELIABLE_MAX_BLOCKING_NS = 100_000_000
"""How long a reliable write may block on a full history, in ns (rmw_cyclonedds uses 100 ms too)."""
MAX_WAIT_S = 0.1
"""Longest a spin waits in one go, so that SIGINT and shutdown requests are seen promptly."""

_PRIMITIVES = {"int32": idl.int32, "uint32": idl.uint32, "float64": idl.float64, "uint8": idl.uint8,
               "int64": idl.int64, "uint64": idl.uint64, "bool": bool, "byte": idl.byte}
_domains: dict[int, tuple[Any, str]] = {}
_idl_types: dict[type, type] = {}


# ----------------------------------------------------------------------------- types
def dds_type_name(message_type: type) -> str:
    """'sensor_msgs/msg/JointState' -> 'sensor_msgs::msg::dds_::JointState_' (the rmw naming)."""
    package, kind, name = message_type.ros_type.split("/")
    return f"{package}::{kind}::dds_::{name}_"


def _idl_field(annotation: Any) -> Any:
    base, bound = unwrap(annotation)
    if isinstance(bound, Fixed):
        (item,) = typing.get_args(base)
        return idl.array[_idl_field(item), bound.size]
    if isinstance(bound, Bounded):
        if base is str:
            return idl.bounded_str[bound.size]
        (item,) = typing.get_args(base)
        return idl.sequence[_idl_field(item), bound.size]
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
    annotation = unwrap(annotation)[0]
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

    The configuration is what ROS 2 Jazzy's rmw_cyclonedds builds from ROS_AUTOMATIC_DISCOVERY_RANGE,
    ROS_STATIC_PEERS and CYCLONEDDS_URI (`tdm_control.ros.discovery`).

    Returns:
      (domain id from ROS_DOMAIN_ID, default 0; the XML configuration, or None to leave Cyclone
      DDS to CYCLONEDDS_URI or its defaults; the description).
    """
    discovery = discovery_settings(environ)
    return discovery.domain_id, discovery.config, discovery.describe()


def open_domain(discovery: Discovery) -> int:
    """Creates the process's DDS domain with `discovery`'s configuration, once per domain id; returns the id.

    Cyclone DDS takes one configuration per domain and process: the first node's wins.
    """
    if discovery.domain_id not in _domains:
        domain = Domain(discovery.domain_id, discovery.config) if discovery.config is not None else None
        _domains[discovery.domain_id] = (domain, discovery.describe())
    return discovery.domain_id


def _open_domain() -> tuple[int, str]:
    discovery = discovery_settings()
    domain_id = open_domain(discovery)
    return domain_id, _domains[domain_id][1]


def dds_qos(qos: QoS) -> Any:
    """The Cyclone DDS QoS of a ROS 2 profile (keep-last history)."""
    reliability = (Policy.Reliability.Reliable(RELIABLE_MAX_BLOCKING_NS) if qos.reliable
                   else Policy.Reliability.BestEffort)
    durability = Policy.Durability.TransientLocal if qos.transient_local else Policy.Durability.Volatile
    return Qos(reliability, durability, Policy.History.KeepLast(qos.depth))


def graph_qos(depth: int, transient_local: bool = False, user_data: bytes = b"", lifespan_ns: int | None = None,
              ignore_local: bool = False) -> Any:
    """Reliable QoS as rmw_cyclonedds builds it for the graph's own endpoints (`create_readwrite_qos`).

    Args:
      depth: keep last `depth`; 0 for keep all (the reader of ros_discovery_info).
      transient_local: also sets the durability service history to the same depth, as rmw does.
      user_data: the endpoint's USER_DATA (`graph.endpoint_user_data`).
      lifespan_ns: samples expire after this long (/rosout: 10 s).
      ignore_local: drop samples of this participant (rmw's reader of ros_discovery_info).
    """
    history = Policy.History.KeepLast(depth) if depth else Policy.History.KeepAll
    policies = [Policy.Reliability.Reliable(RELIABLE_MAX_BLOCKING_NS), history,
                Policy.WriterDataLifecycle(autodispose=False)]
    if transient_local:
        policies += [Policy.Durability.TransientLocal, Policy.DurabilityService(0, history, -1, -1, -1)]
    else:
        policies.append(Policy.Durability.Volatile)
    if user_data:
        policies.append(Policy.Userdata(user_data))
    if lifespan_ns is not None:
        policies.append(Policy.Lifespan(lifespan_ns))
    if ignore_local:
        policies.append(Policy.IgnoreLocal.Participant)
    return Qos(*policies)


def with_user_data(qos: Any, user_data: bytes) -> Any:
    """`qos` (a Cyclone DDS Qos) with USER_DATA `user_data` added (nothing added when empty)."""
    return Qos(*qos, Policy.Userdata(user_data)) if user_data else qos


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
    last_publisher: int | None = None

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
        self.logger = RosoutLogger(self.name, ros.log_level or "info", ros_name=logger_name(self.name, self.namespace))
        self.extra_arguments = ros.other
        fqn = fully_qualified_name(self.name, self.namespace)
        self.parameters = node_parameters(ros, fqn)
        self.wildcard_parameters = wildcard_names(ros, fqn)
        self.parameter_warnings = tuple(shadowed_overrides(ros, fqn))
        use_sim_time = self.parameters.get("use_sim_time", False)
        if not isinstance(use_sim_time, bool):
            raise ConfigError(f"use_sim_time: expected true or false, got {use_sim_time!r}")
        self.use_sim_time = use_sim_time
        discovery = discovery_settings()
        self.distro = discovery.distro
        self.domain_id = open_domain(discovery)
        self._domain_description = _domains[self.domain_id][1]
        self.in_graph = graph_enabled()
        participant_qos = Qos(Policy.Userdata(participant_user_data())) if self.in_graph else None
        self._participant = DomainParticipant(self.domain_id, qos=participant_qos)
        self._waitset = WaitSet(self._participant)
        self._topics: dict[str, Any] = {}
        self._subscriptions: list[_Subscription] = []
        self._timers: list[_Timer] = []
        self._ros_timers: list[_RosTimer] = []
        self._sim_time_ns = 0
        self._clock_received = False
        self._graph: GraphAnnouncer | None = None
        self.parameter_server: ParameterServer | None = None
        self.services: list[ServiceServer] = []
        self._service_ids = 0
        if self.in_graph:
            self._join_graph(fqn)
        for warning in discovery.warnings:
            self.logger.warning(warning)
        if self.use_sim_time:
            self.create_subscription(messages.Clock, "/clock", self._on_clock, CLOCK)

    def describe_transport(self) -> str:
        graph = ("in the ROS 2 graph: ros_discovery_info, /rosout, parameter services" if self.in_graph else
                 f"not in the ROS 2 graph ({GRAPH_ENV}=off: topics only)")
        return f", {self._domain_description}, {graph}"

    # ------------------------------------------------------------------ the ROS 2 graph
    def _join_graph(self, fqn: str) -> None:
        """Announces the node on ros_discovery_info and adds /rosout, /parameter_events and the parameter services."""
        self._graph = GraphAnnouncer(self._participant, self.distro, self.name, self.namespace)
        rosout = self._create_writer(Log, ROSOUT_TOPIC, graph_qos(
            ROSOUT_DEPTH, transient_local=True, lifespan_ns=ROSOUT_LIFESPAN_NS,
            user_data=endpoint_user_data(Log, self.distro)))
        events = self._create_writer(ParameterEvent, PARAMETER_EVENTS_TOPIC, graph_qos(
            PARAMETER_EVENTS_DEPTH, user_data=endpoint_user_data(ParameterEvent, self.distro)))
        self.parameter_server = ParameterServer(fqn, self.now_ns, events.publish)
        for name, handler in self.parameter_server.handlers().items():
            self.create_service(f"~/{name}", PARAMETER_SERVICES[name], handler)
        self.parameter_server.declare({"use_sim_time": self.use_sim_time})
        self.logger.attach(rosout.publish)

    def _create_writer(self, message_type: type, topic: str, qos: Any) -> EmbeddedPublisher:
        """A writer of `topic` with Cyclone DDS QoS `qos`, announced as the node's."""
        dds_topic, _ = self._topic(message_type, topic)
        writer = DataWriter(self._participant, dds_topic, qos)
        if self._graph is not None:
            self._graph.add_writer(writer.guid)
            self._graph.publish()
        return EmbeddedPublisher(writer)

    def _user_data(self, message_type: type, extra: dict[str, str] | None = None) -> bytes:
        return endpoint_user_data(message_type, self.distro, extra) if self.in_graph else b""

    def create_service(self, name: str, service_type: ServiceType, handler: Callable[[Any], Any]) -> ServiceServer:
        """Serves `name` ('~/x' is private to the node): `handler(request) -> response`, on the spinning thread.

        The request reader and the reply writer share rmw_cyclonedds' `serviceid` USER_DATA, which
        clients use to pair them (`services`).
        """
        service = self.resolve(name)
        self._service_ids += 1
        extra = {"serviceid": service_id(self._participant.guid, self._service_ids)} if self.in_graph else None
        request_type, response_type = framed(service_type.request), framed(service_type.response)
        request_topic = Topic(self._participant, f"{REQUEST_PREFIX}{service}{REQUEST_SUFFIX}", idl_type(request_type))
        reply_topic = Topic(self._participant, f"{REPLY_PREFIX}{service}{REPLY_SUFFIX}", idl_type(response_type))
        qos = dds_qos(SERVICE_QOS)
        reader = DataReader(self._participant, request_topic,
                            with_user_data(qos, self._user_data(service_type.request, extra)))
        writer = DataWriter(self._participant, reply_topic,
                            with_user_data(qos, self._user_data(service_type.response, extra)))
        server = ServiceServer(service, service_type.response, service_type.request, handler, reader, writer,
                               lambda response: writer.write(to_idl(response)), self.logger)
        self._waitset.attach(ReadCondition(reader, SampleState.Any | ViewState.Any | InstanceState.Any))
        subscription = _Subscription(reader, request_type, lambda sample: None, service)
        subscription.callback = self.guard(lambda sample: server.on_request(sample, subscription.last_publisher))
        self._subscriptions.append(subscription)
        self.services.append(server)
        if self._graph is not None:
            self._graph.add_reader(reader.guid)
            self._graph.add_writer(writer.guid)
            self._graph.publish()
        return server

    def declare_parameters(self, values: dict[str, Any]) -> None:
        if self.parameter_server is not None:
            self.parameter_server.declare(values)

    def accept_parameter_changes(self, names: Sequence[str], handler: Callable[[dict[str, Any]], str | None],
                                 constraints: str = "") -> None:
        if self.parameter_server is not None:
            self.parameter_server.accept_changes(names, handler, constraints)

    def resolve(self, topic: str) -> str:
        return resolve_topic(topic, self.name, self.namespace, self.remaps)

    def _topic(self, message_type: type, topic: str) -> tuple[Any, str]:
        name = self.resolve(topic)
        if name not in self._topics:
            self._topics[name] = Topic(self._participant, "rt" + name, idl_type(message_type))
        return self._topics[name], name

    def create_publisher(self, message_type: type, topic: str, qos: QoS) -> Publisher:
        return self._create_writer(message_type, topic, with_user_data(dds_qos(qos), self._user_data(message_type)))

    def create_subscription(self, message_type: type, topic: str, callback: Callable[[Any], None],
                            qos: QoS) -> Subscription:
        dds_topic, name = self._topic(message_type, topic)
        reader = DataReader(self._participant, dds_topic, with_user_data(dds_qos(qos), self._user_data(message_type)))
        if self._graph is not None:
            self._graph.add_reader(reader.guid)
            self._graph.publish()
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
                    self.logger.error(f"{sub.topic}: could not decode a message: {e}", throttle_s=1.0,
                                      throttle_key=sub.topic)
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
            sub.last_publisher = sample.sample_info.publication_handle
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
        self.logger.attach(None)
        if self._graph is not None and self._participant is not None:
            self._graph.leave()
        self._subscriptions.clear()
        self._timers.clear()
        self._ros_timers.clear()
        participant, self._participant = self._participant, None
        if participant is not None:
            # cyclonedds keeps every entity in a registry, so dropping the reference deletes
            # nothing: delete the participant (and its readers and writers) explicitly, which
            # also tells the peers at once that this node has left.
            participant.__del__()
