"""A node's parameters as ROS 2 tools see them: the rcl_interfaces services and /parameter_events.

rclcpp's ParameterService (`rclcpp/src/rclcpp/parameter_service.cpp`) offers, under the node's
name, `get_parameters`, `get_parameter_types`, `set_parameters`, `set_parameters_atomically`,
`describe_parameters` and `list_parameters`; `ros2 param list/get/set/describe` call them, and
every declaration or change is announced on /parameter_events. `ParameterServer` answers the same
requests with the same rules, without middleware (the embedded transport carries them, `services`):

* get, get_parameter_types and describe answer every name or none: one undeclared name gives an
  empty answer (rclcpp catches ParameterNotDeclaredException and returns the empty response).
* list follows rclcpp's `NodeParameters::list_parameters` (Jazzy): names sorted, '.' the separator,
  `depth` counting the separators below a prefix (0: all), the prefixes of the names listed beside.
* set_parameters sets each parameter on its own, one result each; set_parameters_atomically all
  or none. Only the parameters the node accepts changes of (`accept_changes`) can change; the
  rest are read-only (`ParameterDescriptor.read_only`) and a request to set one is refused with
  the reason. An accepted change goes to the node's handler, which validates it as the parameter
  file is validated and applies it, or refuses it with the reason; nothing is stored when refused.
* A changed value keeps its type, as rclcpp requires, except that an integer is taken for a
  double parameter (as the parameter file's validation takes `2` for `2.0`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from tdm_control.ros import interfaces as rcl
from tdm_control.ros.interfaces import ParameterType
from tdm_control.ros.messages import Time

SEPARATOR = "."
PARAMETER_EVENTS_TOPIC = "/parameter_events"
PARAMETER_EVENTS_DEPTH = 1000
"""rmw_qos_profile_parameter_events: reliable, volatile, keep last 1000."""

_ARRAY_TYPES = ((bool, ParameterType.BOOL_ARRAY, "bool_array_value"),
                (int, ParameterType.INTEGER_ARRAY, "integer_array_value"),
                (float, ParameterType.DOUBLE_ARRAY, "double_array_value"),
                (str, ParameterType.STRING_ARRAY, "string_array_value"))
_FIELDS = {ParameterType.BOOL: "bool_value", ParameterType.INTEGER: "integer_value",
           ParameterType.DOUBLE: "double_value", ParameterType.STRING: "string_value",
           ParameterType.BYTE_ARRAY: "byte_array_value", ParameterType.BOOL_ARRAY: "bool_array_value",
           ParameterType.INTEGER_ARRAY: "integer_array_value", ParameterType.DOUBLE_ARRAY: "double_array_value",
           ParameterType.STRING_ARRAY: "string_array_value"}
TYPE_NAMES = {ParameterType.NOT_SET: "not set", ParameterType.BOOL: "bool", ParameterType.INTEGER: "integer",
              ParameterType.DOUBLE: "double", ParameterType.STRING: "string", ParameterType.BYTE_ARRAY: "byte array",
              ParameterType.BOOL_ARRAY: "bool array", ParameterType.INTEGER_ARRAY: "integer array",
              ParameterType.DOUBLE_ARRAY: "double array", ParameterType.STRING_ARRAY: "string array"}

ChangeHandler = Callable[[dict[str, Any]], "str | None"]
"""Validates and applies parameter changes {name: value}; returns None when applied, else why not."""


def to_parameter_value(value: Any) -> rcl.ParameterValue | None:
    """A Python value as a ParameterValue; None for what ROS 2 parameters cannot hold (None, an empty
    or mixed list, a mapping)."""
    if isinstance(value, bool):
        return rcl.ParameterValue(type=ParameterType.BOOL, bool_value=value)
    if isinstance(value, int):
        return rcl.ParameterValue(type=ParameterType.INTEGER, integer_value=value)
    if isinstance(value, float):
        return rcl.ParameterValue(type=ParameterType.DOUBLE, double_value=value)
    if isinstance(value, str):
        return rcl.ParameterValue(type=ParameterType.STRING, string_value=value)
    if isinstance(value, (bytes, bytearray)):
        return rcl.ParameterValue(type=ParameterType.BYTE_ARRAY, byte_array_value=list(value))
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) and \
                any(isinstance(v, float) for v in value):
            return rcl.ParameterValue(type=ParameterType.DOUBLE_ARRAY, double_array_value=[float(v) for v in value])
        for python_type, kind, field in _ARRAY_TYPES:
            if all(type(v) is python_type for v in value):
                return rcl.ParameterValue(type=kind, **{field: list(value)})
    return None


def from_parameter_value(value: rcl.ParameterValue) -> Any:
    """The Python value a ParameterValue holds (None for PARAMETER_NOT_SET)."""
    field = _FIELDS.get(value.type)
    if field is None:
        return None
    held = getattr(value, field)
    if value.type == ParameterType.BYTE_ARRAY:
        return bytes(held)
    return list(held) if isinstance(held, (list, tuple)) else held


def list_parameters(names: Iterable[str], prefixes: list[str], depth: int) -> rcl.ListParametersResult:
    """rclcpp's `NodeParameters::list_parameters` (Jazzy) over `names`: with no prefixes, the names with
    fewer than `depth` separators; with prefixes, each prefix itself and the names below it with fewer
    than `depth` separators after the prefix and its separator; `depth` 0 lists all."""
    result = rcl.ListParametersResult()
    recursive = depth == rcl.ListParametersRequest.DEPTH_RECURSIVE
    for name in sorted(names):
        get_all = not prefixes and (recursive or name.count(SEPARATOR) < depth)
        matches = any(name == prefix or (name.startswith(prefix + SEPARATOR)
                                         and (recursive or name[len(prefix) + 1:].count(SEPARATOR) < depth))
                      for prefix in prefixes)
        if get_all or matches:
            result.names.append(name)
            if SEPARATOR in name:
                prefix = name.rsplit(SEPARATOR, 1)[0]
                if prefix not in result.prefixes:
                    result.prefixes.append(prefix)
    return result


class ParameterServer:
    """The parameters of one node, and the answers to the parameter services.

    Args:
      node: the node's fully qualified name ('/planner_node'), for /parameter_events and reasons.
      clock_ns: the node's clock (ROS time, ns): parameter events are stamped with it, as rclcpp does.
      publish_event: sends a ParameterEvent (None: none are sent).
    """

    def __init__(self, node: str, clock_ns: Callable[[], int],
                 publish_event: Callable[[rcl.ParameterEvent], None] | None = None) -> None:
        self.node = node
        self.clock_ns = clock_ns
        self.publish_event = publish_event
        self.values: dict[str, rcl.ParameterValue] = {}
        self.dynamic: dict[str, str] = {}
        """Names that can change at run time -> their additional constraints (descriptor text)."""
        self.handler: ChangeHandler | None = None

    # ------------------------------------------------------------------ the node's side
    def declare(self, values: dict[str, Any]) -> list[str]:
        """Declares parameters not declared yet (announced as new on /parameter_events).

        Returns:
          the names left out because ROS 2 parameters cannot hold their values (None, an empty list).
        """
        new, skipped = [], []
        for name, value in values.items():
            if name in self.values:
                continue
            converted = to_parameter_value(value)
            if converted is None:
                skipped.append(name)
                continue
            self.values[name] = converted
            new.append(rcl.Parameter(name=name, value=converted))
        if new:
            self._event(new_parameters=new)
        return skipped

    def accept_changes(self, names: Iterable[str], handler: ChangeHandler, constraints: str = "") -> None:
        """Parameters `names` may change at run time, through `handler`; every other one is read-only."""
        self.dynamic.update({name: constraints for name in names})
        self.handler = handler

    def value(self, name: str) -> Any:
        return from_parameter_value(self.values[name])

    # ------------------------------------------------------------------ services
    def get_parameters(self, request: rcl.GetParametersRequest) -> rcl.GetParametersResponse:
        if any(name not in self.values for name in request.names):
            return rcl.GetParametersResponse()
        return rcl.GetParametersResponse(values=[self.values[name] for name in request.names])

    def get_parameter_types(self, request: rcl.GetParameterTypesRequest) -> rcl.GetParameterTypesResponse:
        if any(name not in self.values for name in request.names):
            return rcl.GetParameterTypesResponse()
        return rcl.GetParameterTypesResponse(types=[self.values[name].type for name in request.names])

    def list_parameters(self, request: rcl.ListParametersRequest) -> rcl.ListParametersResponse:
        return rcl.ListParametersResponse(result=list_parameters(self.values, list(request.prefixes),
                                                                 request.depth))

    def describe_parameters(self, request: rcl.DescribeParametersRequest) -> rcl.DescribeParametersResponse:
        if any(name not in self.values for name in request.names):
            return rcl.DescribeParametersResponse()
        return rcl.DescribeParametersResponse(descriptors=[self.describe(name) for name in request.names])

    def describe(self, name: str) -> rcl.ParameterDescriptor:
        dynamic = name in self.dynamic
        constraints = self.dynamic.get(name, "") if dynamic else \
            "read-only: set at start (parameter file or -p); restart the node to change it"
        return rcl.ParameterDescriptor(name=name, type=self.values[name].type, read_only=not dynamic,
                                       additional_constraints=constraints)

    def set_parameters(self, request: rcl.SetParametersRequest) -> rcl.SetParametersResponse:
        return rcl.SetParametersResponse(results=[self._set([p]) for p in request.parameters])

    def set_parameters_atomically(self, request: rcl.SetParametersAtomicallyRequest
                                  ) -> rcl.SetParametersAtomicallyResponse:
        return rcl.SetParametersAtomicallyResponse(result=self._set(list(request.parameters)))

    def handlers(self) -> dict[str, Callable[[Any], Any]]:
        """Service name (under the node, `interfaces.PARAMETER_SERVICES`) -> request handler."""
        return {name: getattr(self, name) for name in rcl.PARAMETER_SERVICES}

    # ------------------------------------------------------------------ setting
    def _refusal(self, parameter: rcl.Parameter) -> str | None:
        name, value = parameter.name, parameter.value
        if name not in self.values:
            return f"parameter '{name}' is not declared by node {self.node}"
        if value.type == ParameterType.NOT_SET:
            return f"parameter '{name}' cannot be deleted: node {self.node} declared it"
        if name not in self.dynamic or self.handler is None:
            changeable = ", ".join(sorted(self.dynamic)) or "none"
            return (f"parameter '{name}' is read-only: node {self.node} reads it once at start; restart the node "
                    f"with the new value (parameters that can change while it runs: {changeable})")
        declared = self.values[name].type
        if value.type != declared and not (declared == ParameterType.DOUBLE and value.type == ParameterType.INTEGER):
            return (f"parameter '{name}' is of type {TYPE_NAMES[declared]}; setting it to a "
                    f"{TYPE_NAMES.get(value.type, value.type)} is not allowed")
        return None

    def _set(self, parameters: list[rcl.Parameter]) -> rcl.SetParametersResult:
        for parameter in parameters:
            refusal = self._refusal(parameter)
            if refusal:
                return rcl.SetParametersResult(successful=False, reason=refusal)
        changes = {}
        for p in parameters:
            value = from_parameter_value(p.value)
            if self.values[p.name].type == ParameterType.DOUBLE:
                value = float(value)
            changes[p.name] = value
        reason = self.handler(changes)
        if reason:
            return rcl.SetParametersResult(successful=False, reason=reason)
        changed = []
        for name, value in changes.items():
            self.values[name] = to_parameter_value(value)
            changed.append(rcl.Parameter(name=name, value=self.values[name]))
        self._event(changed_parameters=changed)
        return rcl.SetParametersResult(successful=True)

    def _event(self, **lists: list[rcl.Parameter]) -> None:
        if self.publish_event is not None:
            self.publish_event(rcl.ParameterEvent(stamp=Time.from_ns(max(0, self.clock_ns())), node=self.node,
                                                  **lists))
