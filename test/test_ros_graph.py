"""The nodes as full citizens of the ROS 2 graph (issue 20), seen by an independent ROS 2 peer.

The bridge and the planner run as real processes on the embedded transport. The peer is written
here against the wire format alone, with Cyclone DDS IDL types spelled out from the ROS 2 interface
definitions and configured as rmw_cyclonedds configures a Jazzy node in the LOCALHOST range (the
XML below), never through the project's transport. It checks that:
* `ros_discovery_info` lists both nodes with the GIDs of their readers and writers, which are the
  keys of the endpoints DDS discovery announces, and the participant's own GID;
* their log lines arrive on /rosout with level, logger name, file, function and line;
* the planner's parameters can be listed, read, described and set through the rcl_interfaces
  services, framed as rmw_cyclonedds frames requests, that read-only and invalid values are refused
  with the reason, that a change is announced on /parameter_events, and that the planner's next plan
  uses it (its planned trajectory has the new horizon);
* `tdm-control graph` lists both nodes with their topics and services.
"""

import dataclasses
import itertools
import json
import time

import pytest
from cyclonedds.builtin import (
    BuiltinDataReader,
    BuiltinTopicDcpsParticipant,
    BuiltinTopicDcpsPublication,
    BuiltinTopicDcpsSubscription,
)
from cyclonedds.core import Policy, Qos
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from ros_helpers import DEADLINE_S, NodeProcess, params_args, ros_domain  # noqa: F401

# rmw_cyclonedds (Jazzy) check_create_domain, RMW_AUTOMATIC_DISCOVERY_RANGE_LOCALHOST, written out.
RMW_LOCALHOST_XML = ("<CycloneDDS><Domain><General><AllowMulticast>false</AllowMulticast></General><Discovery>"
                     "<ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>"
                     '<Peers><Peer address="localhost"/></Peers></Discovery></Domain></CycloneDDS>,')
HORIZON, NEW_HORIZON, SAMPLES = 10, 4, 8
INTEGER, STRING = 2, 4  # rcl_interfaces/msg/ParameterType


# ------------------------------------------------------------------ the ROS 2 types, from their .msg/.srv files
@dataclasses.dataclass
class Time_(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: t.int32
    nanosec: t.uint32


@dataclasses.dataclass
class Duration_(IdlStruct, typename="builtin_interfaces::msg::dds_::Duration_"):
    sec: t.int32
    nanosec: t.uint32


@dataclasses.dataclass
class Header_(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time_
    frame_id: str


@dataclasses.dataclass
class JointTrajectoryPoint_(IdlStruct, typename="trajectory_msgs::msg::dds_::JointTrajectoryPoint_"):
    positions: t.sequence[t.float64]
    velocities: t.sequence[t.float64]
    accelerations: t.sequence[t.float64]
    effort: t.sequence[t.float64]
    time_from_start: Duration_


@dataclasses.dataclass
class JointTrajectory_(IdlStruct, typename="trajectory_msgs::msg::dds_::JointTrajectory_"):
    header: Header_
    joint_names: t.sequence[str]
    points: t.sequence[JointTrajectoryPoint_]


@dataclasses.dataclass
class Gid_(IdlStruct, typename="rmw_dds_common::msg::dds_::Gid_"):
    data: t.array[t.uint8, 16]  # Jazzy: char[16]


@dataclasses.dataclass
class NodeEntitiesInfo_(IdlStruct, typename="rmw_dds_common::msg::dds_::NodeEntitiesInfo_"):
    node_namespace: t.bounded_str[256]
    node_name: t.bounded_str[256]
    reader_gid_seq: t.sequence[Gid_]
    writer_gid_seq: t.sequence[Gid_]


@dataclasses.dataclass
class ParticipantEntitiesInfo_(IdlStruct, typename="rmw_dds_common::msg::dds_::ParticipantEntitiesInfo_"):
    gid: Gid_
    node_entities_info_seq: t.sequence[NodeEntitiesInfo_]


@dataclasses.dataclass
class Log_(IdlStruct, typename="rcl_interfaces::msg::dds_::Log_"):
    stamp: Time_
    level: t.uint8
    name: str
    msg: str
    file: str
    function: str
    line: t.uint32


@dataclasses.dataclass
class ParameterValue_(IdlStruct, typename="rcl_interfaces::msg::dds_::ParameterValue_"):
    type: t.uint8
    bool_value: bool
    integer_value: t.int64
    double_value: t.float64
    string_value: str
    byte_array_value: t.sequence[t.byte]
    bool_array_value: t.sequence[bool]
    integer_array_value: t.sequence[t.int64]
    double_array_value: t.sequence[t.float64]
    string_array_value: t.sequence[str]


def value(kind: int, **fields) -> ParameterValue_:
    defaults = dict(bool_value=False, integer_value=0, double_value=0.0, string_value="", byte_array_value=[],
                    bool_array_value=[], integer_array_value=[], double_array_value=[], string_array_value=[])
    return ParameterValue_(type=kind, **{**defaults, **fields})


@dataclasses.dataclass
class Parameter_(IdlStruct, typename="rcl_interfaces::msg::dds_::Parameter_"):
    name: str
    value: ParameterValue_


@dataclasses.dataclass
class ParameterEvent_(IdlStruct, typename="rcl_interfaces::msg::dds_::ParameterEvent_"):
    stamp: Time_
    node: str
    new_parameters: t.sequence[Parameter_]
    changed_parameters: t.sequence[Parameter_]
    deleted_parameters: t.sequence[Parameter_]


@dataclasses.dataclass
class FloatingPointRange_(IdlStruct, typename="rcl_interfaces::msg::dds_::FloatingPointRange_"):
    from_value: t.float64
    to_value: t.float64
    step: t.float64


@dataclasses.dataclass
class IntegerRange_(IdlStruct, typename="rcl_interfaces::msg::dds_::IntegerRange_"):
    from_value: t.int64
    to_value: t.int64
    step: t.uint64


@dataclasses.dataclass
class ParameterDescriptor_(IdlStruct, typename="rcl_interfaces::msg::dds_::ParameterDescriptor_"):
    name: str
    type: t.uint8
    description: str
    additional_constraints: str
    read_only: bool
    dynamic_typing: bool
    floating_point_range: t.sequence[FloatingPointRange_, 1]
    integer_range: t.sequence[IntegerRange_, 1]


@dataclasses.dataclass
class SetParametersResult_(IdlStruct, typename="rcl_interfaces::msg::dds_::SetParametersResult_"):
    successful: bool
    reason: str


@dataclasses.dataclass
class ListParametersResult_(IdlStruct, typename="rcl_interfaces::msg::dds_::ListParametersResult_"):
    names: t.sequence[str]
    prefixes: t.sequence[str]


# Service samples start with rmw_cyclonedds' request header (serdata.hpp cdds_request_header_t: uint64 guid,
# int64 seq), then the fields of the .srv half.
@dataclasses.dataclass
class GetParameters_Request_(IdlStruct, typename="rcl_interfaces::srv::dds_::GetParameters_Request_"):
    guid: t.uint64
    seq: t.int64
    names: t.sequence[str]


@dataclasses.dataclass
class GetParameters_Response_(IdlStruct, typename="rcl_interfaces::srv::dds_::GetParameters_Response_"):
    guid: t.uint64
    seq: t.int64
    values: t.sequence[ParameterValue_]


@dataclasses.dataclass
class SetParameters_Request_(IdlStruct, typename="rcl_interfaces::srv::dds_::SetParameters_Request_"):
    guid: t.uint64
    seq: t.int64
    parameters: t.sequence[Parameter_]


@dataclasses.dataclass
class SetParameters_Response_(IdlStruct, typename="rcl_interfaces::srv::dds_::SetParameters_Response_"):
    guid: t.uint64
    seq: t.int64
    results: t.sequence[SetParametersResult_]


@dataclasses.dataclass
class DescribeParameters_Request_(IdlStruct, typename="rcl_interfaces::srv::dds_::DescribeParameters_Request_"):
    guid: t.uint64
    seq: t.int64
    names: t.sequence[str]


@dataclasses.dataclass
class DescribeParameters_Response_(IdlStruct, typename="rcl_interfaces::srv::dds_::DescribeParameters_Response_"):
    guid: t.uint64
    seq: t.int64
    descriptors: t.sequence[ParameterDescriptor_]


@dataclasses.dataclass
class ListParameters_Request_(IdlStruct, typename="rcl_interfaces::srv::dds_::ListParameters_Request_"):
    guid: t.uint64
    seq: t.int64
    prefixes: t.sequence[str]
    depth: t.uint64


@dataclasses.dataclass
class ListParameters_Response_(IdlStruct, typename="rcl_interfaces::srv::dds_::ListParameters_Response_"):
    guid: t.uint64
    seq: t.int64
    result: ListParametersResult_


# ------------------------------------------------------------------ the peer
def reliable(depth: int = 10, transient_local: bool = False, user_data: bytes = b"") -> Qos:
    policies = [Policy.Reliability.Reliable(100_000_000), Policy.History.KeepLast(depth),
                Policy.Durability.TransientLocal if transient_local else Policy.Durability.Volatile]
    return Qos(*policies, *([Policy.Userdata(user_data)] if user_data else []))


def wait_for(condition, what: str, poll=lambda: None, timeout: float = DEADLINE_S):
    """Polls until `condition()` is true; fails the test after `timeout` s (a generous deadline, never a measure)."""
    deadline = time.monotonic() + timeout
    while True:
        poll()
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Client:
    """A service client as rmw_cyclonedds makes one: request writer and reply reader with one `clientid`,
    requests stamped with the writer's instance handle and a sequence number, replies taken by both."""

    ids = itertools.count(1)

    def __init__(self, participant, service: str, request_type, response_type) -> None:
        qos = reliable(user_data=f"clientid=test.{next(self.ids)};".encode())  # rmw_qos_profile_services_default
        self.writer = DataWriter(participant, Topic(participant, f"rq{service}Request", request_type), qos)
        self.reader = DataReader(participant, Topic(participant, f"rr{service}Reply", response_type), qos)
        self.request_type, self.seq = request_type, 0

    def call(self, **fields):
        wait_for(lambda: self.writer.get_matched_subscriptions() and self.reader.get_matched_publications(),
                 f"the service of {self.request_type.__name__}")
        self.seq += 1
        guid = self.writer.instance_handle % 2 ** 64  # a uint64 (cyclonedds gives it as a signed int)
        self.writer.write(self.request_type(guid=guid, seq=self.seq, **fields))
        replies = []
        return wait_for(lambda: next((r for r in replies if (r.guid, r.seq) == (guid, self.seq)), None),
                        f"the reply to {self.request_type.__name__} {fields}",
                        poll=lambda: replies.extend(self.reader.take(N=16)))


class Peer:
    """Reads the graph's announcements: discovery info, DDS endpoints, /rosout, /parameter_events, plans."""

    def __init__(self, domain: int) -> None:
        self.domain = Domain(domain, RMW_LOCALHOST_XML)
        self.participant = p = DomainParticipant(domain)
        self.infos = DataReader(p, Topic(p, "ros_discovery_info", ParticipantEntitiesInfo_),
                                reliable(depth=100, transient_local=True))
        self.rosout = DataReader(p, Topic(p, "rt/rosout", Log_), reliable(depth=1000, transient_local=True))
        self.events = DataReader(p, Topic(p, "rt/parameter_events", ParameterEvent_), reliable(depth=1000))
        self.plans = DataReader(p, Topic(p, "rt/planner_node/planned_trajectory", JointTrajectory_), reliable(1000))
        self.builtin = {kind: BuiltinDataReader(p, kind) for kind in
                        (BuiltinTopicDcpsParticipant, BuiltinTopicDcpsPublication, BuiltinTopicDcpsSubscription)}
        self.latest: dict[bytes, ParticipantEntitiesInfo_] = {}
        self.participants: set[bytes] = set()
        self.writers: dict[bytes, object] = {}
        self.readers: dict[bytes, object] = {}
        self.logs: list[Log_] = []
        self.event_list: list[ParameterEvent_] = []
        self.trajectories: list[JointTrajectory_] = []

    def poll(self) -> None:
        for info in self.infos.take(N=100):
            self.latest[bytes(info.gid.data)] = info
        for sample in self.builtin[BuiltinTopicDcpsParticipant].take(N=100):
            self.participants.add(sample.key.bytes)
        for kind, found in ((BuiltinTopicDcpsPublication, self.writers), (BuiltinTopicDcpsSubscription, self.readers)):
            for sample in self.builtin[kind].take(N=100):
                found[sample.key.bytes] = sample
        self.logs += self.rosout.take(N=1000)
        self.event_list += self.events.take(N=100)
        self.trajectories += self.plans.take(N=100)

    def node(self, name: str):
        """(participant gid, NodeEntitiesInfo) of node `name` whose every GID is a discovered endpoint, or None."""
        for gid, info in self.latest.items():
            for node in info.node_entities_info_seq:
                if node.node_name == name and node.node_namespace == "/" and gid in self.participants and \
                        all(bytes(g.data) in self.readers for g in node.reader_gid_seq) and \
                        all(bytes(g.data) in self.writers for g in node.writer_gid_seq):
                    return gid, node
        return None

    def topics(self, node) -> tuple[set[str], set[str]]:
        """The DDS topic names of a node's readers and writers."""
        return ({self.readers[bytes(g.data)].topic_name for g in node.reader_gid_seq},
                {self.writers[bytes(g.data)].topic_name for g in node.writer_gid_seq})


@pytest.fixture
def running_graph(tmp_path, ros_domain):  # noqa: F811
    """The bridge (realtime, unlimited episodes) and the planner (async, ground truth) as processes."""
    args = params_args(tmp_path, {
        "sim_bridge": {"mode": "realtime", "episodes": 0, "progress_period": 0},
        "planner_node": {"model": "mujoco", "execution": "async", "threads": 1,
                         "planner_params": {"samples": SAMPLES, "horizon": HORIZON}}})
    bridge = NodeProcess.node("sim_bridge.bridge_node", *args)
    planner = NodeProcess.node("tdm_control.nodes.planner_node", *args)
    try:
        yield ros_domain, bridge, planner
        for process in (planner, bridge):
            assert process.interrupt() == 0, process.output
    finally:
        planner.kill()
        bridge.kill()


def test_ros2_peer_sees_nodes_logs_and_parameters(running_graph):
    domain, bridge, planner = running_graph
    peer = Peer(domain)

    # ros_discovery_info: both nodes, their endpoints' GIDs are the DDS keys of what they publish and read.
    expected = {
        "sim_bridge": ({"rt/effort_controller/commands", "rt/sim_bridge/reset", "rq/sim_bridge/get_parametersRequest"},
                       {"rt/joint_states", "rt/clock", "rt/reward", "rt/sim_bridge/episode", "rt/rosout",
                        "rt/parameter_events", "rr/sim_bridge/get_parametersReply"}),
        "planner_node": ({"rt/joint_states", "rt/clock", "rt/sim_bridge/episode",
                          "rq/planner_node/set_parametersRequest"},
                         {"rt/effort_controller/commands", "rt/planner_node/planned_trajectory", "rt/rosout"})}

    def announced(name):
        """The node's entry once it lists (at least) the expected endpoints, each one discovered."""
        found = peer.node(name)
        if found is None:
            return None
        reads, writes = peer.topics(found[1])
        return found if expected[name][0] <= reads and expected[name][1] <= writes else None

    (bridge_gid, bridge_node), (planner_gid, planner_node) = (
        wait_for(lambda: announced(name), f"{name} and its endpoints in ros_discovery_info", peer.poll)
        for name in ("sim_bridge", "planner_node"))
    for gid, node in ((bridge_gid, bridge_node), (planner_gid, planner_node)):
        for g in node.writer_gid_seq:  # every endpoint belongs to the participant that announced it
            assert peer.writers[bytes(g.data)].participant_key.bytes == gid
    assert bridge_gid != planner_gid

    # /rosout: the start-up lines, with where they were logged.
    def logged(name, text):
        return next((log for log in peer.logs if log.name == name and text in log.msg), None)

    line = wait_for(lambda: logged("planner_node", "planning: task cartpole_swingup"), "the planner's log line",
                    peer.poll)
    assert line.level == 20 and line.file.endswith("planner_node.py") and line.function == "__init__" and line.line
    assert line.stamp.sec > 1_600_000_000  # system time, as rcutils stamps log lines
    line = wait_for(lambda: logged("sim_bridge", "episode 0 started"), "the bridge's log line", peer.poll)
    assert line.level == 20 and line.file.endswith("bridge_node.py") and line.function == "start_episode"

    # Parameters through the rcl_interfaces services.
    p = peer.participant
    get = Client(p, "/planner_node/get_parameters", GetParameters_Request_, GetParameters_Response_)
    values = get.call(names=["planner_params.samples", "planner_params.horizon", "model", "use_sim_time"]).values
    assert [(v.type, v.integer_value) for v in values[:2]] == [(INTEGER, SAMPLES), (INTEGER, HORIZON)]
    assert (values[2].type, values[2].string_value) == (STRING, "mujoco") and values[3].bool_value is True
    assert get.call(names=["planner_params.horizon", "no_such_parameter"]).values == []  # all or none, as rclcpp
    listed = Client(p, "/planner_node/list_parameters", ListParameters_Request_, ListParameters_Response_).call(
        prefixes=[], depth=0).result
    assert {"planner_params.samples", "planner_params.horizon", "execution", "use_sim_time"} <= set(listed.names)
    assert "planner_params" in listed.prefixes
    described = Client(p, "/planner_node/describe_parameters", DescribeParameters_Request_,
                       DescribeParameters_Response_).call(names=["planner_params.horizon", "model"]).descriptors
    assert [(d.name, d.type, d.read_only) for d in described] == [("planner_params.horizon", INTEGER, False),
                                                                  ("model", STRING, True)]

    wait_for(lambda: any(len(trajectory.points) == HORIZON for trajectory in peer.trajectories),
             "a plan of the first horizon", peer.poll)
    set_ = Client(p, "/planner_node/set_parameters", SetParameters_Request_, SetParameters_Response_)
    results = set_.call(parameters=[
        Parameter_("planner_params.horizon", value(INTEGER, integer_value=NEW_HORIZON)),
        Parameter_("model", value(STRING, string_value="models/other.onnx")),
        Parameter_("planner_params.samples", value(INTEGER, integer_value=0))]).results
    assert results[0].successful and results[0].reason == ""
    assert not results[1].successful and "read-only" in results[1].reason
    assert not results[2].successful and "samples" in results[2].reason and ">= 1" in results[2].reason
    assert [(v.type, v.integer_value) for v in get.call(names=["planner_params.horizon"]).values] == \
        [(INTEGER, NEW_HORIZON)]

    # The change is announced, and the planner's next plans have the new horizon.
    event = wait_for(lambda: next((e for e in peer.event_list if e.node == "/planner_node" and e.changed_parameters),
                                  None), "the parameter event", peer.poll)
    assert [(c.name, c.value.integer_value) for c in event.changed_parameters] == [("planner_params.horizon",
                                                                                    NEW_HORIZON)]
    seen = len(peer.trajectories)
    wait_for(lambda: any(len(trajectory.points) == NEW_HORIZON for trajectory in peer.trajectories[seen:]),
             "a plan of the new horizon", peer.poll)
    planner.wait_for_output(r"parameters \{'planner_params.horizon': 4\} set")

    # tdm-control graph: the same nodes, for users without ROS 2 tools.
    graph = NodeProcess(["-m", "tdm_control.cli", "graph", "--json", "--wait", "1"])
    assert graph.wait() == 0, graph.output
    nodes = {node["full_name"]: node for node in json.loads(graph.output[graph.output.index("["):])}
    assert {"/sim_bridge", "/planner_node"} <= set(nodes), graph.output
    planner_info = nodes["/planner_node"]
    assert ["/joint_states", "sensor_msgs/msg/JointState"] in planner_info["subscribers"]
    assert ["/effort_controller/commands", "std_msgs/msg/Float64MultiArray"] in planner_info["publishers"]
    assert ["/planner_node/set_parameters", "rcl_interfaces/srv/SetParameters"] in planner_info["service_servers"]
    peer.participant.__del__()
