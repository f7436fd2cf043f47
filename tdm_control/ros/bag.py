"""rosbag2 files: what `--record` writes (and `tdm-train import-bag` reads).

A bag is a folder holding `metadata.yaml` and one storage file: MCAP (the default, what ROS 2
Jazzy's `ros2 bag record` writes) or sqlite3 (the default before Iron). The container is written by
`rosbags` (pip, in the `ros` extra), a maintained implementation of both storage plugins. Each topic's
connection carries its message definition (the `.msg` text with every type it uses) and its type
hash (RIHS01), so `ros2 bag info`, Foxglove and any rosbag2 reader decode the bag without this
package; it also carries the QoS the recording node used on the topic, so `ros2 bag play` offers it
as it was (the episode topic latched). Payloads are CDR bytes as on the wire: rosbags' ROS 2 Jazzy serialisation,
which test_ros_wire shows equal to what the embedded transport sends.

Every message is stamped with the wall-clock time it was written (ns since the epoch, as `ros2 bag
record` stamps receipt), made strictly increasing so that a reader that orders by time keeps the
order the messages were sent in.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import time
import typing
from typing import Any

import numpy as np

from tdm_control.config import ConfigError
from tdm_control.ros import messages
from tdm_control.ros.transport import QoS

STORAGES = ("mcap", "sqlite3")
"""rosbag2 storage plugins a recording can use; the first is the default."""
BAG_VERSION = 9
"""rosbag2 metadata version written (ROS 2 Jazzy's)."""
TYPESTORE = "ROS2_JAZZY"
"""rosbags type store whose message definitions and type hashes go into the bag."""


def _rosbags():
    """The rosbags modules a bag needs, or an ImportError that says how to install them."""
    try:
        from rosbags import interfaces, rosbag2, typesys
    except ImportError as e:
        raise ImportError(f"ROS 2 bags need the 'rosbags' package ({e}); install it with: pip install -e '.[ros]'") \
            from e
    return interfaces, rosbag2, typesys


@functools.cache
def typestore():
    """rosbags' ROS 2 Jazzy type store (message definitions, hashes, CDR), built once."""
    _, _, typesys = _rosbags()
    return typesys.get_typestore(getattr(typesys.Stores, TYPESTORE))


def _is_float_sequence(annotation: Any) -> bool:
    if typing.get_origin(annotation) is not list:
        return False
    (item,) = typing.get_args(annotation)
    return typing.get_origin(item) is typing.Annotated and typing.get_args(item)[1] == "float64"


def to_rosbags(message: Any) -> Any:
    """A message dataclass (tdm_control.ros.messages) as the rosbags message of the same type.

    float64[] fields become numpy arrays (as rosbags holds them); an empty message gets
    rosidl's placeholder member, as on the wire.
    """
    cls = type(message)
    hints = messages.field_types(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        annotation, value = hints[field.name], getattr(message, field.name)
        if dataclasses.is_dataclass(annotation):
            value = to_rosbags(value)
        elif _is_float_sequence(annotation):
            value = np.asarray(value, dtype=np.float64)
        elif typing.get_origin(annotation) is list and dataclasses.is_dataclass(typing.get_args(annotation)[0]):
            value = [to_rosbags(v) for v in value]
        values[field.name] = value
    if not values:
        values["structure_needs_at_least_one_member"] = 0
    return typestore().types[cls.ros_type](**values)


def serialize(message: Any) -> bytes:
    """The CDR bytes (little-endian, with the 4-byte encapsulation header) of a message dataclass."""
    return bytes(typestore().serialize_cdr(to_rosbags(message), type(message).ros_type))


def rosbags_qos(qos: QoS):
    """A transport QoS as the rosbags profile stored with a topic (what `ros2 bag play` offers)."""
    interfaces, _, _ = _rosbags()
    infinite = interfaces.QosTime(sec=0, nsec=0)
    return interfaces.Qos(
        history=interfaces.QosHistory.KEEP_LAST, depth=qos.depth,
        reliability=interfaces.QosReliability.RELIABLE if qos.reliable else interfaces.QosReliability.BEST_EFFORT,
        durability=(interfaces.QosDurability.TRANSIENT_LOCAL if qos.transient_local
                    else interfaces.QosDurability.VOLATILE),
        deadline=infinite, lifespan=infinite, liveliness=interfaces.QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=infinite, avoid_ros_namespace_conventions=False)


class BagWriter:
    """Writes message dataclasses to a new rosbag2 folder.

    Args:
      path: the bag folder to create; an existing path is refused (ConfigError), as `ros2 bag
        record -o` refuses it.
      storage: 'mcap' (default) or 'sqlite3'.
    """

    def __init__(self, path: str, storage: str = STORAGES[0]) -> None:
        if storage not in STORAGES:
            raise ConfigError(f"bag storage {storage!r}: choose one of {', '.join(STORAGES)}")
        if os.path.exists(path):
            raise ConfigError(f"bag {path} exists already; a recording never overwrites one: choose a new path")
        _, rosbag2, _ = _rosbags()
        plugin = rosbag2.StoragePlugin.MCAP if storage == "mcap" else rosbag2.StoragePlugin.SQLITE3
        self.path = path
        self.storage = storage
        self._writer = rosbag2.Writer(path, version=BAG_VERSION, storage_plugin=plugin)
        self._writer.open()
        self._connections: dict[str, tuple[Any, type]] = {}
        self.counts: dict[str, int] = {}
        """Messages written per topic, in the order the topics were added."""
        self._last_ns = 0
        self.closed = False

    def add_topic(self, topic: str, message_type: type, qos: QoS) -> None:
        """Declares `topic` (fully qualified) with its type and QoS; again with the same type does nothing."""
        if topic in self._connections:
            if self._connections[topic][1] is not message_type:
                raise ConfigError(f"bag {self.path}: topic {topic} is already recorded as "
                                  f"{self._connections[topic][1].ros_type}, not {message_type.ros_type}")
            return
        connection = self._writer.add_connection(topic, message_type.ros_type, typestore=typestore(),
                                                 offered_qos_profiles=[rosbags_qos(qos)])
        self._connections[topic] = (connection, message_type)
        self.counts[topic] = 0

    def write(self, topic: str, message: Any) -> None:
        """Writes one message on a topic added before, stamped now (wall clock, strictly increasing)."""
        if self.closed:
            return
        connection, _ = self._connections[topic]
        stamp = max(time.time_ns(), self._last_ns + 1)
        self._last_ns = stamp
        self._writer.write(connection, stamp, serialize(message))
        self.counts[topic] += 1

    def close(self) -> None:
        """Finishes the storage file (MCAP summary and index) and writes metadata.yaml; once."""
        if not self.closed:
            self.closed = True
            self._writer.close()

    def discard(self) -> None:
        """Closes and deletes the bag (a recording that never started: the node refused its parameters)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        """Where the bag is and what it holds, for a result JSON and the log."""
        return {"path": self.path, "storage": self.storage, "messages": dict(self.counts),
                "types": {topic: t.ros_type for topic, (_, t) in self._connections.items()}}


class RecordingPublisher:
    """A publisher that also writes what it publishes to its node's bag."""

    def __init__(self, publisher: Any, recording: RecordingNode, topic: str) -> None:
        self._publisher = publisher
        self._recording = recording
        self._topic = topic

    def publish(self, message: Any) -> None:
        self._publisher.publish(message)
        self._recording.write(self._topic, message)

    @property
    def subscription_count(self) -> int:
        return self._publisher.subscription_count


class RecordingNode:
    """A node whose publications and received messages are also written to a bag.

    It forwards everything else to the node it wraps, so node code runs unchanged on it;
    `record` subscribes to other nodes' topics only to record them. Messages are written
    when published, or when received just before their callback runs, on the spinning
    thread, so the bag holds them in the order the node saw them. A message that cannot
    be written is logged and the node goes on: recording never stops the loop.
    """

    def __init__(self, node: Any, bag: BagWriter) -> None:
        self._node = node
        self.bag = bag

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node, name)

    def write(self, topic: str, message: Any) -> None:
        try:
            self.bag.write(topic, message)
        except Exception as e:  # noqa: BLE001 - a full disk must not stop a robot's loop
            self._node.logger.error(f"recording to {self.bag.path}: could not write a message on {topic} "
                                    f"({type(e).__name__}: {e})", throttle_s=5.0, throttle_key="bag write")

    def create_publisher(self, message_type: type, topic: str, qos: QoS) -> RecordingPublisher:
        name = self._node.resolve(topic)
        self.bag.add_topic(name, message_type, qos)
        return RecordingPublisher(self._node.create_publisher(message_type, topic, qos), self, name)

    def create_subscription(self, message_type: type, topic: str, callback, qos: QoS) -> Any:
        name = self._node.resolve(topic)
        self.bag.add_topic(name, message_type, qos)

        def recorded(message: Any) -> None:
            self.write(name, message)
            callback(message)

        recorded.__qualname__ = getattr(callback, "__qualname__", repr(callback))  # for the error log
        return self._node.create_subscription(message_type, topic, recorded, qos)

    def record(self, message_type: type, topic: str, qos: QoS) -> None:
        """Subscribes to `topic` only to write what arrives to the bag."""
        self.create_subscription(message_type, topic, lambda _: None, qos)


def parse_topic_types(entries: typing.Sequence[str], what: str) -> list[tuple[str, type]]:
    """'TOPIC:pkg/msg/Type' entries -> (topic, message dataclass); ConfigError naming `what` otherwise.

    The type is one of the package's message types (tdm_control.ros.messages.MESSAGES).
    """
    by_name = {t.ros_type: t for t in messages.MESSAGES}
    by_name.update({t.ros_type.replace("/msg/", "/"): t for t in messages.MESSAGES})
    out = []
    for entry in entries:
        topic, sep, type_name = str(entry).rpartition(":")
        if not sep or not topic or type_name not in by_name:
            raise ConfigError(f"{what}: {entry!r} must be 'TOPIC:TYPE' with TYPE one of "
                              f"{', '.join(t.ros_type for t in messages.MESSAGES)}")
        out.append((topic, by_name[type_name]))
    return out


def start_recording(node: Any, path: str, storage: str, topics: typing.Sequence[str], qos: QoS) -> RecordingNode:
    """`node` wrapped so that it records to a new bag at `path`, and subscribed to `topics`
    ('TOPIC:TYPE', other nodes' topics) with `qos` to record them too."""
    if storage not in STORAGES:
        raise ConfigError(f"record_storage: must be one of {', '.join(STORAGES)}, got {storage!r}")
    others = parse_topic_types(topics, "record_topics")
    try:
        bag = BagWriter(path, storage)
    except ImportError as e:  # reported as a bad parameter: the node cannot do what it was asked
        raise ConfigError(f"record: {e}") from None
    recording = RecordingNode(node, bag)
    for topic, message_type in others:
        recording.record(message_type, topic, qos)
    node.logger.info(f"recording to {path} ({storage}): what this node sends and receives, and "
                     f"{', '.join(topic for topic, _ in others) or 'no other topic'}")
    return recording


def stop_recording(recording: RecordingNode, logger: Any) -> dict[str, Any]:
    """Closes the bag, logs what it holds (messages per topic) and returns `BagWriter.describe()`."""
    bag = recording.bag
    bag.close()
    counts = ", ".join(f"{topic} {count}" for topic, count in bag.counts.items())
    logger.info(f"recorded {sum(bag.counts.values())} messages on {len(bag.counts)} topics to {bag.path} "
                f"({bag.storage}): {counts}")
    return bag.describe()
