"""The ROS 2 interfaces of the graph itself, as message dataclasses: discovery, logs and parameters.

The nodes' own topics use `tdm_control.ros.messages`; these types are what a ROS 2 node
publishes and serves besides, so that ROS 2 tools see it (`tdm_control.ros.graph`,
`rosout`, `param_services`):

* `rmw_dds_common/msg/ParticipantEntitiesInfo` on `ros_discovery_info`: which nodes a DDS
  participant holds, and their readers and writers (`ros2 node list/info`).
* `rcl_interfaces/msg/Log` on `/rosout`: every log line (rqt_console, Foxglove, `ros2 topic echo`).
* `rcl_interfaces` parameter messages and the request and response of each parameter service
  (`ros2 param`), and `ParameterEvent` on `/parameter_events`.

Fields follow the .msg/.srv definitions of rmw_dds_common and rcl_interfaces (Humble and Jazzy
branches; the test compares the bytes with rosbags' typestores). One difference between the
distributions reaches the wire: `rmw_dds_common/msg/Gid` is `char[24]` in Humble and `char[16]`
in Jazzy (RMW_GID_STORAGE_SIZE shrank in Iron), hence the `Humble*` variants.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, ClassVar

from tdm_control.ros.messages import Bounded, Fixed, Time, boolean, float64, int64, octet, uint8, uint32, uint64

DISTROS = ("jazzy", "humble")
"""ROS 2 distributions whose wire formats the embedded transport speaks (`ROS_DISTRO`; default jazzy)."""
GID_SIZE = {"jazzy": 16, "humble": 24}
"""Bytes of rmw_dds_common/msg/Gid: a DDS GUID (16 bytes), zero-padded to RMW_GID_STORAGE_SIZE."""
NODE_NAME_BOUND = 256
"""`string<=256` node names and namespaces in NodeEntitiesInfo."""


# ----------------------------------------------------------------------------- rmw_dds_common
@dataclasses.dataclass
class Gid:
    """rmw_dds_common/msg/Gid (Jazzy, `char[16] data`): a DDS entity's GUID, prefix then entity id."""

    ros_type: ClassVar[str] = "rmw_dds_common/msg/Gid"
    data: Annotated[list[uint8], Fixed(16)] = dataclasses.field(default_factory=lambda: [0] * 16)


@dataclasses.dataclass
class NodeEntitiesInfo:
    """rmw_dds_common/msg/NodeEntitiesInfo: one node of a participant, and the GIDs of its readers and writers."""

    ros_type: ClassVar[str] = "rmw_dds_common/msg/NodeEntitiesInfo"
    node_namespace: Annotated[str, Bounded(NODE_NAME_BOUND)] = "/"
    node_name: Annotated[str, Bounded(NODE_NAME_BOUND)] = ""
    reader_gid_seq: list[Gid] = dataclasses.field(default_factory=list)
    writer_gid_seq: list[Gid] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ParticipantEntitiesInfo:
    """rmw_dds_common/msg/ParticipantEntitiesInfo: a DDS participant (one process) and its nodes."""

    ros_type: ClassVar[str] = "rmw_dds_common/msg/ParticipantEntitiesInfo"
    gid: Gid = dataclasses.field(default_factory=Gid)
    node_entities_info_seq: list[NodeEntitiesInfo] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class HumbleGid(Gid):
    """rmw_dds_common/msg/Gid as Humble has it: `char[24] data`, the GUID then 8 zero bytes."""

    data: Annotated[list[uint8], Fixed(24)] = dataclasses.field(default_factory=lambda: [0] * 24)


@dataclasses.dataclass
class HumbleNodeEntitiesInfo(NodeEntitiesInfo):
    reader_gid_seq: list[HumbleGid] = dataclasses.field(default_factory=list)
    writer_gid_seq: list[HumbleGid] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class HumbleParticipantEntitiesInfo(ParticipantEntitiesInfo):
    gid: HumbleGid = dataclasses.field(default_factory=HumbleGid)
    node_entities_info_seq: list[HumbleNodeEntitiesInfo] = dataclasses.field(default_factory=list)


DISCOVERY_TYPES = {"jazzy": (Gid, NodeEntitiesInfo, ParticipantEntitiesInfo),
                   "humble": (HumbleGid, HumbleNodeEntitiesInfo, HumbleParticipantEntitiesInfo)}
"""distribution -> (Gid, NodeEntitiesInfo, ParticipantEntitiesInfo) of its wire format."""


# ----------------------------------------------------------------------------- rcl_interfaces: logs
@dataclasses.dataclass
class Log:
    """rcl_interfaces/msg/Log: one log line, as rcl publishes it on /rosout."""

    ros_type: ClassVar[str] = "rcl_interfaces/msg/Log"
    DEBUG: ClassVar[int] = 10
    INFO: ClassVar[int] = 20
    WARN: ClassVar[int] = 30
    ERROR: ClassVar[int] = 40
    FATAL: ClassVar[int] = 50
    stamp: Time = dataclasses.field(default_factory=Time)
    """When it was logged (system time, as rcutils stamps log lines, also under use_sim_time)."""
    level: uint8 = 0
    name: str = ""
    """The logger: the node's name, its namespace in front with dots ('ns.node')."""
    msg: str = ""
    file: str = ""
    function: str = ""
    line: uint32 = 0


# ----------------------------------------------------------------------------- rcl_interfaces: parameters
class ParameterType:
    """rcl_interfaces/msg/ParameterType: the `type` of a ParameterValue."""

    NOT_SET = 0
    BOOL = 1
    INTEGER = 2
    DOUBLE = 3
    STRING = 4
    BYTE_ARRAY = 5
    BOOL_ARRAY = 6
    INTEGER_ARRAY = 7
    DOUBLE_ARRAY = 8
    STRING_ARRAY = 9


@dataclasses.dataclass
class ParameterValue:
    """rcl_interfaces/msg/ParameterValue: a value of one of the parameter types; `type` says which field holds it."""

    ros_type: ClassVar[str] = "rcl_interfaces/msg/ParameterValue"
    type: uint8 = ParameterType.NOT_SET
    bool_value: boolean = False
    integer_value: int64 = 0
    double_value: float64 = 0.0
    string_value: str = ""
    byte_array_value: list[octet] = dataclasses.field(default_factory=list)
    bool_array_value: list[boolean] = dataclasses.field(default_factory=list)
    integer_array_value: list[int64] = dataclasses.field(default_factory=list)
    double_array_value: list[float64] = dataclasses.field(default_factory=list)
    string_array_value: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Parameter:
    """rcl_interfaces/msg/Parameter: a name and its value."""

    ros_type: ClassVar[str] = "rcl_interfaces/msg/Parameter"
    name: str = ""
    value: ParameterValue = dataclasses.field(default_factory=ParameterValue)


@dataclasses.dataclass
class FloatingPointRange:
    """rcl_interfaces/msg/FloatingPointRange: the range a double parameter may take."""

    ros_type: ClassVar[str] = "rcl_interfaces/msg/FloatingPointRange"
    from_value: float64 = 0.0
    to_value: float64 = 0.0
    step: float64 = 0.0


@dataclasses.dataclass
class IntegerRange:
    """rcl_interfaces/msg/IntegerRange: the range an integer parameter may take."""

    ros_type: ClassVar[str] = "rcl_interfaces/msg/IntegerRange"
    from_value: int64 = 0
    to_value: int64 = 0
    step: uint64 = 0


@dataclasses.dataclass
class ParameterDescriptor:
    """rcl_interfaces/msg/ParameterDescriptor: what a parameter is and whether it can change."""

    ros_type: ClassVar[str] = "rcl_interfaces/msg/ParameterDescriptor"
    name: str = ""
    type: uint8 = ParameterType.NOT_SET
    description: str = ""
    additional_constraints: str = ""
    read_only: boolean = False
    dynamic_typing: boolean = False
    floating_point_range: Annotated[list[FloatingPointRange], Bounded(1)] = dataclasses.field(default_factory=list)
    integer_range: Annotated[list[IntegerRange], Bounded(1)] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SetParametersResult:
    """rcl_interfaces/msg/SetParametersResult: whether one parameter was set, and why not."""

    ros_type: ClassVar[str] = "rcl_interfaces/msg/SetParametersResult"
    successful: boolean = False
    reason: str = ""


@dataclasses.dataclass
class ListParametersResult:
    """rcl_interfaces/msg/ListParametersResult: parameter names, and the prefixes ('a.b') among them."""

    ros_type: ClassVar[str] = "rcl_interfaces/msg/ListParametersResult"
    names: list[str] = dataclasses.field(default_factory=list)
    prefixes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ParameterEvent:
    """rcl_interfaces/msg/ParameterEvent: parameters a node declared, changed or deleted (/parameter_events)."""

    ros_type: ClassVar[str] = "rcl_interfaces/msg/ParameterEvent"
    stamp: Time = dataclasses.field(default_factory=Time)
    node: str = ""
    """The node's fully qualified name ('/planner_node')."""
    new_parameters: list[Parameter] = dataclasses.field(default_factory=list)
    changed_parameters: list[Parameter] = dataclasses.field(default_factory=list)
    deleted_parameters: list[Parameter] = dataclasses.field(default_factory=list)


# ----------------------------------------------------------------------------- rcl_interfaces: parameter services
@dataclasses.dataclass
class GetParametersRequest:
    ros_type: ClassVar[str] = "rcl_interfaces/srv/GetParameters_Request"
    names: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class GetParametersResponse:
    ros_type: ClassVar[str] = "rcl_interfaces/srv/GetParameters_Response"
    values: list[ParameterValue] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ListParametersRequest:
    ros_type: ClassVar[str] = "rcl_interfaces/srv/ListParameters_Request"
    DEPTH_RECURSIVE: ClassVar[int] = 0
    prefixes: list[str] = dataclasses.field(default_factory=list)
    depth: uint64 = 0


@dataclasses.dataclass
class ListParametersResponse:
    ros_type: ClassVar[str] = "rcl_interfaces/srv/ListParameters_Response"
    result: ListParametersResult = dataclasses.field(default_factory=ListParametersResult)


@dataclasses.dataclass
class DescribeParametersRequest:
    ros_type: ClassVar[str] = "rcl_interfaces/srv/DescribeParameters_Request"
    names: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class DescribeParametersResponse:
    ros_type: ClassVar[str] = "rcl_interfaces/srv/DescribeParameters_Response"
    descriptors: list[ParameterDescriptor] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class GetParameterTypesRequest:
    ros_type: ClassVar[str] = "rcl_interfaces/srv/GetParameterTypes_Request"
    names: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class GetParameterTypesResponse:
    ros_type: ClassVar[str] = "rcl_interfaces/srv/GetParameterTypes_Response"
    types: list[uint8] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SetParametersRequest:
    ros_type: ClassVar[str] = "rcl_interfaces/srv/SetParameters_Request"
    parameters: list[Parameter] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SetParametersResponse:
    ros_type: ClassVar[str] = "rcl_interfaces/srv/SetParameters_Response"
    results: list[SetParametersResult] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SetParametersAtomicallyRequest:
    ros_type: ClassVar[str] = "rcl_interfaces/srv/SetParametersAtomically_Request"
    parameters: list[Parameter] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SetParametersAtomicallyResponse:
    ros_type: ClassVar[str] = "rcl_interfaces/srv/SetParametersAtomically_Response"
    result: SetParametersResult = dataclasses.field(default_factory=SetParametersResult)


@dataclasses.dataclass(frozen=True)
class ServiceType:
    """A ROS 2 service type: its name ('rcl_interfaces/srv/GetParameters') and its two messages."""

    name: str
    request: type
    response: type


PARAMETER_SERVICES: dict[str, ServiceType] = {
    "get_parameters": ServiceType("rcl_interfaces/srv/GetParameters", GetParametersRequest, GetParametersResponse),
    "get_parameter_types": ServiceType("rcl_interfaces/srv/GetParameterTypes", GetParameterTypesRequest,
                                       GetParameterTypesResponse),
    "set_parameters": ServiceType("rcl_interfaces/srv/SetParameters", SetParametersRequest, SetParametersResponse),
    "set_parameters_atomically": ServiceType("rcl_interfaces/srv/SetParametersAtomically",
                                             SetParametersAtomicallyRequest, SetParametersAtomicallyResponse),
    "describe_parameters": ServiceType("rcl_interfaces/srv/DescribeParameters", DescribeParametersRequest,
                                       DescribeParametersResponse),
    "list_parameters": ServiceType("rcl_interfaces/srv/ListParameters", ListParametersRequest,
                                   ListParametersResponse),
}
"""The services rclcpp's ParameterService offers under `~/` (rclcpp/src/rclcpp/parameter_service.cpp)."""

MESSAGES: tuple[type, ...] = (
    Gid, NodeEntitiesInfo, ParticipantEntitiesInfo, HumbleGid, HumbleNodeEntitiesInfo, HumbleParticipantEntitiesInfo,
    Log, ParameterValue, Parameter, FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult,
    ListParametersResult, ParameterEvent,
    *(t for service in PARAMETER_SERVICES.values() for t in (service.request, service.response)))
"""Every type of this module (the wire test covers each)."""
