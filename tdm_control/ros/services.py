"""ROS 2 services over DDS, served as rmw_cyclonedds serves them (the embedded transport's side).

A service `/x` of type `pkg/srv/T` is a pair of DDS topics (rmw_cyclonedds `rmw_init_cs`):
requests on `rq/xRequest` (type `pkg::srv::dds_::T_Request_`) and replies on `rr/xReply`
(`pkg::srv::dds_::T_Response_`), reliable, volatile, keep last 10 (rmw_qos_profile_services_default).
Each sample starts with rmw_cyclonedds' request header (`cdds_request_header_t`, serdata.cpp):
`uint64 guid` (the client's request writer, as its instance handle) and `int64 seq` (the client's
request number), written in the CDR stream before the message's own fields. The server copies
both into its reply, and the client takes the replies that carry its guid.

Before replying, rmw_cyclonedds waits up to 100 ms, in 10 ms steps, until its reply writer has
matched the client's reply reader (`rmw_send_response`, `check_for_response_reader`): the client
that sent the request is found through its request writer's USER_DATA `clientid=...;`, and its
reply reader carries the same id. Without the wait, a reply sent before discovery finished would
be lost. A client without a client id (older rmw) is answered at once; a client that is gone is
not answered; one still not matched after 100 ms is not answered either (rmw returns a timeout).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable

from tdm_control.ros.graph import parse_user_data
from tdm_control.ros.messages import field_types, int64, uint64
from tdm_control.ros.transport import QoS

SERVICE_QOS = QoS(reliable=True, transient_local=False, depth=10)
"""rmw_qos_profile_services_default."""
REPLY_WAIT_S = 0.1
REPLY_POLL_S = 0.01
"""How long, and in what steps, a reply waits for the client's reply reader (rmw_send_response: 100 ms, 10 ms)."""
HEADER_FIELDS = ("guid", "seq")
"""The two fields of rmw_cyclonedds' request header, named as its `cdds_request_header_t` names them.

The names never reach a ROS 2 peer: rmw_cyclonedds' types announce no XTypes type information
("not yet providing type discovery, assignability checking", serdata.cpp), so its endpoints match
ours by type name alone. Between two Cyclone DDS Python endpoints, member names must agree."""


@functools.cache
def framed(message_type: type) -> type:
    """`message_type` as it travels in a service: rmw_cyclonedds' request header, then the message's fields.

    A dataclass with the same `ros_type` (so the same DDS type name) and two leading fields,
    `guid: uint64` and `seq: int64`.
    """
    hints = field_types(message_type)
    clash = set(HEADER_FIELDS) & {f.name for f in dataclasses.fields(message_type)}
    if clash:
        raise TypeError(f"{message_type.ros_type} has fields {sorted(clash)}, the names of the request header")
    fields = [(HEADER_FIELDS[0], uint64, dataclasses.field(default=0)),
              (HEADER_FIELDS[1], int64, dataclasses.field(default=0))]
    for f in dataclasses.fields(message_type):
        default = (dataclasses.field(default_factory=f.default_factory)
                   if f.default_factory is not dataclasses.MISSING else dataclasses.field(default=f.default))
        fields.append((f.name, hints[f.name], default))
    return dataclasses.make_dataclass(f"Framed{message_type.__name__}", fields,
                                      namespace={"ros_type": message_type.ros_type})


def frame(message: Any, guid: int, seq: int) -> Any:
    """`message` with the request header (guid, seq) in front."""
    values = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    return framed(type(message))(guid=guid, seq=seq, **values)


def unframe(sample: Any, message_type: type) -> tuple[int, int, Any]:
    """(guid, seq, message) of a framed sample."""
    message = message_type(**{f.name: getattr(sample, f.name) for f in dataclasses.fields(message_type)})
    return sample.guid, sample.seq, message


def client_status(reader: Any, writer: Any, publication_handle: int) -> str:
    """Whether the client that wrote a request can get the reply: 'yes', 'maybe' (not matched yet) or 'gone'.

    Args:
      reader: the service's request reader; `publication_handle`: the writer of the request.
      writer: the service's reply writer.
    """
    try:
        request_writer = reader.get_matched_publication_data(publication_handle)
    except Exception:  # noqa: BLE001 - cyclonedds raises when the handle is no longer matched
        return "gone"
    if request_writer is None:
        return "gone"
    client = user_data_of(request_writer).get("clientid")
    if client is None:
        return "yes"  # a client without an id: all is well (rmw's backwards compatibility)
    for handle in writer.get_matched_subscriptions():
        try:
            reply_reader = writer.get_matched_subscription_data(handle)
        except Exception:  # noqa: BLE001 - went away meanwhile
            continue
        if reply_reader is not None and user_data_of(reply_reader).get("clientid") == client:
            return "yes"
    return "maybe"


def user_data_of(endpoint: Any) -> dict[str, str]:
    """The USER_DATA pairs of a discovered endpoint (a cyclonedds DcpsEndpoint or DcpsParticipant)."""
    from cyclonedds.core import Policy

    policy = endpoint.qos[Policy.Userdata]
    return parse_user_data(policy.data if policy is not None else None)


class ServiceServer:
    """Answers the requests of one service: `handler(request) -> response`, run on the spinning thread.

    Args:
      name: the service's full name ('/planner_node/get_parameters').
      response_type: the response message dataclass.
      request_reader, reply_writer: the DDS reader of 'rq/...Request' and writer of 'rr/...Reply'.
      write: sends one framed response (the transport's conversion and write).
      log: the node's logger (a reply that cannot be delivered is warned about).
    """

    def __init__(self, name: str, response_type: type, request_type: type, handler: Callable[[Any], Any],
                 request_reader: Any, reply_writer: Any, write: Callable[[Any], None], log: Any) -> None:
        self.name = name
        self.request_type = request_type
        self.response_type = response_type
        self.handler = handler
        self.reader = request_reader
        self.writer = reply_writer
        self.write = write
        self.log = log
        self.served = 0

    def on_request(self, sample: Any, publication_handle: int) -> None:
        """Handles one framed request, written by the writer `publication_handle`, and replies when the
        client can receive it."""
        guid, seq, request = unframe(sample, self.request_type)
        response = self.handler(request)
        deadline = time.monotonic() + REPLY_WAIT_S
        status = client_status(self.reader, self.writer, publication_handle)
        while status == "maybe" and time.monotonic() < deadline:
            time.sleep(REPLY_POLL_S)
            status = client_status(self.reader, self.writer, publication_handle)
        if status == "yes":
            self.write(frame(response, guid, seq))
            self.served += 1
        elif status == "maybe":
            self.log.warning(f"{self.name}: the client's reply reader was not discovered within "
                             f"{REPLY_WAIT_S} s: reply to request {seq} dropped", throttle_s=1.0,
                             throttle_key=self.name)
