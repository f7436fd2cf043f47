"""The ROS 2 graph over DDS: announcing a node's entities on `ros_discovery_info`, and reading them back.

DDS discovery tells every participant which readers and writers exist, but not which ROS
node owns them. rmw implementations add that on the DDS topic `ros_discovery_info` (no `rt/`
prefix: rmw creates it with avoid_ros_namespace_conventions): each participant publishes one
`rmw_dds_common/msg/ParticipantEntitiesInfo` holding its GID and, per node, the namespace,
the name and the GIDs of the node's readers and writers, and publishes it again whenever that
changes (rmw_cyclonedds `rmw_context_impl_s::init`, rmw_dds_common `GraphCache`). A GID is
the entity's DDS GUID (16 bytes: prefix, then entity id), zero-padded to the Gid size of the
distribution (`convert_guid_to_gid`). The QoS is rmw's: reliable, transient local, keep last 1
for the writer (so a tool started later gets the current state); keep all, ignoring the
participant's own samples, for the reader.

Endpoints also carry USER_DATA as rmw_cyclonedds writes it (`create_readwrite_qos`, `init`):
participants `enclave=/;`; Jazzy endpoints `typehash=RIHS01_...;`; service readers and writers
`serviceid=<id>;` first, the id shared by the two so that clients can pair them.

`read_graph` is the other side, for users without ROS 2 tools (`tdm-control graph`): the nodes
of a running graph and, through the DDS built-in topics, the topics and services of each.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from typing import Any, Mapping

from tdm_control.config import ConfigError
from tdm_control.ros.discovery import Discovery
from tdm_control.ros.interfaces import DISCOVERY_TYPES, GID_SIZE
from tdm_control.ros.type_hash import type_hash

GRAPH_ENV = "TDM_ROS_GRAPH"
"""'off' leaves the embedded transport's nodes out of the ROS 2 graph (topics only, as before issue 20);
'on' (default) makes them full nodes."""
DISCOVERY_TOPIC = "ros_discovery_info"
ENCLAVE = "/"
"""The security enclave rcl gives a node when none is set (user data `enclave=/;`)."""
TOPIC_PREFIX, REQUEST_PREFIX, REPLY_PREFIX = "rt", "rq", "rr"
REQUEST_SUFFIX, REPLY_SUFFIX = "Request", "Reply"
"""rmw_cyclonedds topic names: 'rt/x' for topic /x, 'rq/xRequest' and 'rr/xReply' for service /x."""


def graph_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether TDM_ROS_GRAPH (default 'on') lets embedded nodes take part in the ROS 2 graph."""
    text = (os.environ if environ is None else environ).get(GRAPH_ENV, "").strip().lower()
    if text in ("", "on", "1", "true", "yes"):
        return True
    if text in ("off", "0", "false", "no"):
        return False
    raise ConfigError(f"{GRAPH_ENV}={text!r}: use 'on' or 'off'")


# ----------------------------------------------------------------------------- GIDs and USER_DATA
def gid_data(guid: uuid.UUID, distro: str) -> list[int]:
    """The Gid bytes of a DDS entity: its GUID (`uuid.bytes`: prefix, entity id), zero-padded."""
    data = list(guid.bytes)
    return data + [0] * (GID_SIZE[distro] - len(data))


def make_gid(guid: uuid.UUID, distro: str) -> Any:
    """rmw_dds_common/msg/Gid of a DDS entity, in `distro`'s size."""
    return DISCOVERY_TYPES[distro][0](data=gid_data(guid, distro))


def encode_user_data(pairs: dict[str, str]) -> bytes:
    """'key=value;' pairs, in order (rmw's user data format)."""
    return "".join(f"{key}={value};" for key, value in pairs.items()).encode()


def parse_user_data(data: bytes | None) -> dict[str, str]:
    """The 'key=value;' pairs of a USER_DATA value (rmw `parse_key_value`); anything else is skipped."""
    pairs = {}
    for item in (data or b"").decode(errors="replace").split(";"):
        key, sep, value = item.partition("=")
        if sep and key:
            pairs[key] = value
    return pairs


def endpoint_user_data(message_type: type, distro: str, extra: dict[str, str] | None = None) -> bytes:
    """USER_DATA of a reader or writer of `message_type`: `extra` pairs, then (Jazzy) the type hash."""
    pairs = dict(extra or {})
    if distro != "humble":  # rmw_cyclonedds humble writes no type hash
        pairs["typehash"] = type_hash(message_type)
    return encode_user_data(pairs)


def participant_user_data() -> bytes:
    """USER_DATA of the participant: its enclave (rmw_cyclonedds `rmw_context_impl_s::init`)."""
    return encode_user_data({"enclave": ENCLAVE})


def service_id(participant: uuid.UUID, counter: int) -> str:
    """rmw_cyclonedds' client/service id text (`get_unique_csid`, `csid_to_string`): the participant's
    GUID prefix (12 bytes) and a big-endian counter, in hex, dot-separated, the first byte padded
    to 2 characters with a space (std::setw(2) with the default fill)."""
    data = participant.bytes[:12] + counter.to_bytes(4, "big")
    return f"{data[0]:2x}" + "".join(f".{b:x}" for b in data[1:])


# ----------------------------------------------------------------------------- names
def ros_topic(dds_topic: str) -> tuple[str, str]:
    """('topic' | 'request' | 'reply' | 'dds', ROS name) of a DDS topic name ('rt/x' -> ('topic', '/x'))."""
    prefix, _, rest = dds_topic.partition("/")
    if prefix == TOPIC_PREFIX and rest:
        return "topic", "/" + rest
    if prefix == REQUEST_PREFIX and rest.endswith(REQUEST_SUFFIX):
        return "request", "/" + rest[:-len(REQUEST_SUFFIX)]
    if prefix == REPLY_PREFIX and rest.endswith(REPLY_SUFFIX):
        return "reply", "/" + rest[:-len(REPLY_SUFFIX)]
    return "dds", dds_topic


def ros_type(dds_type: str) -> str:
    """'pkg::msg::dds_::T_' -> 'pkg/msg/T'; a service request or reply type -> 'pkg/srv/T'."""
    parts = dds_type.split("::")
    if len(parts) != 4 or parts[2] != "dds_" or not parts[3].endswith("_"):
        return dds_type
    name = parts[3][:-1]
    if parts[1] == "srv":
        for suffix in ("_Request", "_Response"):
            name = name.removesuffix(suffix)
    return f"{parts[0]}/{parts[1]}/{name}"


# ----------------------------------------------------------------------------- announcing
class GraphAnnouncer:
    """Keeps one node's entry in `ros_discovery_info` current for its participant.

    Args:
      participant: the node's Cyclone DDS participant (one per node, so one node per entry).
      distro: 'jazzy' or 'humble' (the Gid size).
      name, namespace: the node's name and namespace ('' or '/' for the root).
    """

    def __init__(self, participant: Any, distro: str, name: str, namespace: str) -> None:
        from cyclonedds.pub import DataWriter
        from cyclonedds.topic import Topic

        from tdm_control.ros.embedded import graph_qos, idl_type

        self.distro = distro
        self.gid_type, self.node_type, self.info_type = DISCOVERY_TYPES[distro]
        self.participant_gid = make_gid(participant.guid, distro)
        self.name = name
        self.namespace = "/" + namespace.strip("/") if namespace.strip("/") else "/"
        self.readers: list[uuid.UUID] = []
        self.writers: list[uuid.UUID] = []
        # The writer of ros_discovery_info belongs to the participant, not to the node (as in rmw).
        topic = Topic(participant, DISCOVERY_TOPIC, idl_type(self.info_type))
        self._writer = DataWriter(participant, topic, graph_qos(depth=1, transient_local=True,
                                                                user_data=endpoint_user_data(self.info_type,
                                                                                             distro)))

    def add_reader(self, guid: uuid.UUID) -> None:
        """A reader of the node (its GUID); announced at the next `publish`."""
        self.readers.append(guid)

    def add_writer(self, guid: uuid.UUID) -> None:
        self.writers.append(guid)

    def message(self, with_node: bool = True) -> Any:
        """The ParticipantEntitiesInfo of this participant: the node, or (leaving) none."""
        nodes = []
        if with_node:
            nodes.append(self.node_type(
                node_namespace=self.namespace, node_name=self.name,
                reader_gid_seq=[make_gid(g, self.distro) for g in self.readers],
                writer_gid_seq=[make_gid(g, self.distro) for g in self.writers]))
        return self.info_type(gid=self.participant_gid, node_entities_info_seq=nodes)

    def publish(self) -> None:
        """Publishes the current entry (after each new reader or writer, as rmw does)."""
        from tdm_control.ros.embedded import to_idl

        self._writer.write(to_idl(self.message()))

    def leave(self) -> None:
        """Announces that the node is gone (rmw publishes the entry without it before the node is destroyed)."""
        from tdm_control.ros.embedded import to_idl

        self._writer.write(to_idl(self.message(with_node=False)))


# ----------------------------------------------------------------------------- reading
@dataclasses.dataclass
class NodeInfo:
    """A node of a running graph, as `ros2 node info` shows it: (name, type) pairs."""

    namespace: str
    name: str
    participant: str
    """Participant GUID (hex) the node lives in."""
    subscribers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    publishers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    service_servers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    service_clients: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}"


def _attach(node: NodeInfo, endpoint: Any, is_reader: bool) -> None:
    kind, name = ros_topic(endpoint.topic_name)
    item = (name, ros_type(endpoint.type_name))
    if kind == "topic":
        (node.subscribers if is_reader else node.publishers).append(item)
    elif kind == "request":
        (node.service_servers if is_reader else node.service_clients).append(item)


def read_graph(discovery: Discovery, wait_s: float) -> list[NodeInfo]:
    """The nodes of the running graph in `discovery`'s domain, found within `wait_s` seconds.

    Discovery takes a moment: a node is listed once its `ros_discovery_info` and the DDS
    announcements of its endpoints have arrived; an endpoint not yet discovered is left out.
    Returns the nodes sorted by full name, each one's topics and services sorted.
    """
    from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication, BuiltinTopicDcpsSubscription
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    from tdm_control.ros import messages
    from tdm_control.ros.embedded import graph_qos, idl_type, open_domain

    open_domain(discovery)
    participant = DomainParticipant(discovery.domain_id)
    try:
        info_type = DISCOVERY_TYPES[discovery.distro][2]
        infos = DataReader(participant, Topic(participant, DISCOVERY_TOPIC, idl_type(info_type)),
                           graph_qos(depth=0, transient_local=True, ignore_local=True))
        publications = BuiltinDataReader(participant, BuiltinTopicDcpsPublication)
        subscriptions = BuiltinDataReader(participant, BuiltinTopicDcpsSubscription)
        latest: dict[bytes, Any] = {}
        writers: dict[bytes, Any] = {}
        readers: dict[bytes, Any] = {}
        deadline = time.monotonic() + wait_s
        while True:
            for sample in infos.take(N=256):
                if sample.sample_info.valid_data:
                    message = messages.from_fields(sample, info_type)
                    latest[bytes(message.gid.data[:16])] = message
            for sample in publications.take(N=256):
                if sample.sample_info.valid_data:
                    writers[sample.key.bytes] = sample
            for sample in subscriptions.take(N=256):
                if sample.sample_info.valid_data:
                    readers[sample.key.bytes] = sample
            if time.monotonic() >= deadline:
                break
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    finally:
        participant.__del__()  # cyclonedds keeps entities registered: delete explicitly (see EmbeddedNode.close)
    nodes = []
    for gid, info in latest.items():
        for entry in info.node_entities_info_seq:
            node = NodeInfo(entry.node_namespace, entry.node_name, gid.hex())
            for g in entry.reader_gid_seq:
                if bytes(g.data[:16]) in readers:
                    _attach(node, readers[bytes(g.data[:16])], True)
            for g in entry.writer_gid_seq:
                if bytes(g.data[:16]) in writers:
                    _attach(node, writers[bytes(g.data[:16])], False)
            for items in (node.subscribers, node.publishers, node.service_servers, node.service_clients):
                items.sort()
            nodes.append(node)
    return sorted(nodes, key=lambda n: n.full_name)


def format_graph(nodes: list[NodeInfo]) -> str:
    """The nodes as `ros2 node info` prints them, one after the other."""
    if not nodes:
        return "no ROS 2 nodes found"
    lines = []
    for node in nodes:
        lines.append(node.full_name)
        for title, items in (("Subscribers", node.subscribers), ("Publishers", node.publishers),
                             ("Service Servers", node.service_servers), ("Service Clients", node.service_clients)):
            lines.append(f"  {title}:")
            lines.extend(f"    {name}: {kind}" for name, kind in items)
    return "\n".join(lines)
