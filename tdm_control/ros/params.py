"""ROS 2 command-line arguments and parameter files, read the way rcl and rclcpp read them.

A node started with

    planner_node --ros-args --params-file config/cartpole.yaml -p seed:=3 -r __node:=planner

gets the same parameters here as under `ros2 run`: every `--params-file` and
every `-p` is merged in command-line order (a later value wins), `-p name:=value`
applies to all nodes (`/**`) unless written `-p node:name:=value`, and the node
then takes the `/**` entries overridden by the entries of its own fully
qualified name. Nested YAML keys become dotted names (`planner_params.samples`).
Only the embedded transport needs this module to read parameters; under rclpy, rcl
does the same.

Two traps of that precedence are reported, not silent: a `-p name:=value` that the
node's own entry overrides (`shadowed_overrides`: a warning saying how to write it
for the node), and a parameter given to all nodes that this node does not have
(`own_parameters`: ignored with a warning, so `-p steps:=200` meant for the bridge
does not make the planner refuse its whole configuration; a node-specific unknown
name stays an error, as a misspelling should).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence, TypeVar

import yaml

from tdm_control.config import ConfigError, from_dict
from tdm_control.files import read_yaml

T = TypeVar("T")

ROS_ARGS = "--ros-args"
END_ROS_ARGS = "--"
WILDCARD = "/**"


@dataclasses.dataclass
class RosArgs:
    """What `--ros-args ... [--]` said, plus the arguments outside it."""

    overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """Node pattern ('/**' or '/ns/name') -> parameter name -> value, merged in command-line order."""
    node_name: str | None = None
    """From `-r __node:=name`."""
    namespace: str | None = None
    """From `-r __ns:=/ns`."""
    remaps: dict[str, str] = dataclasses.field(default_factory=dict)
    """Topic remappings `-r from:=to`."""
    log_level: str | None = None
    """From `--log-level LEVEL`."""
    sources: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    """(node pattern, parameter name) -> where its value came from: 'file.yaml' or '-p rule'."""
    wildcard_rules: list[tuple[str, Any, str]] = dataclasses.field(default_factory=list)
    """(name, value, rule text) of each `-p name:=value` that applies to all nodes, in command-line order."""
    other: list[str] = dataclasses.field(default_factory=list)
    """Arguments that are not ROS arguments (for the program itself)."""


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: nested parameter namespaces to dotted names."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def nest(values: dict[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}: dotted parameter names back to nested dictionaries."""
    nested: dict[str, Any] = {}
    for name, value in values.items():
        *parents, leaf = name.split(".")
        level = nested
        for part in parents:
            level = level.setdefault(part, {})
            if not isinstance(level, dict):
                raise ConfigError(f"parameter {name!r} conflicts with parameter {part!r}")
        level[leaf] = value
    return nested


def _node_key(key: str, namespace: str) -> str:
    """A params-file node key ('planner_node', '/ns/planner_node', '/**') as a fully qualified pattern."""
    key = key.strip("/") if key != WILDCARD else key
    if key == WILDCARD or key == "**":
        return WILDCARD
    return f"{namespace.rstrip('/')}/{key}"


def _collect(tree: Any, namespace: str, where: str, out: dict[str, dict[str, Any]]) -> None:
    if not isinstance(tree, dict):
        raise ConfigError(f"{where}: expected 'node_name: {{ros__parameters: {{...}}}}', got {tree!r}")
    for key, value in tree.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key!r} must hold 'ros__parameters:' or nested node names")
        node = _node_key(str(key), namespace)
        if "ros__parameters" in value:
            extra = sorted(set(value) - {"ros__parameters"})
            if extra:
                raise ConfigError(f"{where}: node {key!r} has keys {extra} beside ros__parameters")
            params = value["ros__parameters"] or {}
            if not isinstance(params, dict):
                raise ConfigError(f"{where}: {key}.ros__parameters must be a mapping")
            out.setdefault(node, {}).update(flatten(params))
        else:
            _collect(value, node, where, out)  # a namespace level: ns: {node: {ros__parameters: ...}}


def read_params_file(path: str) -> dict[str, dict[str, Any]]:
    """Reads a `ros__parameters` YAML file.

    Returns:
      node pattern ('/**' or fully qualified '/ns/name') -> dotted parameter name -> value.

    Raises:
      ConfigError naming the file when it is missing or malformed.
    """
    tree = read_yaml(path, "parameter file")
    out: dict[str, dict[str, Any]] = {}
    _collect(tree or {}, "", path, out)
    return out


def _merge(into: RosArgs, new: dict[str, dict[str, Any]], source: str) -> None:
    for node, params in new.items():
        into.overrides.setdefault(node, {}).update(params)
        for name in params:
            into.sources[(node, name)] = source


def _param_rule(rule: str) -> tuple[str, str, Any]:
    """'name:=value' or 'node:name:=value' -> (node pattern, name, value parsed as YAML)."""
    if ":=" not in rule:
        raise ConfigError(f"-p {rule!r}: expected name:=value")
    name, text = rule.split(":=", 1)
    node = WILDCARD
    if ":" in name:
        node, name = name.split(":", 1)
        node = _node_key(node, "")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"-p {rule!r}: value is not valid YAML: {e}") from None
    return node, name, value


def parse_ros_args(argv: Sequence[str]) -> RosArgs:
    """Splits a command line into ROS arguments and the rest.

    Understands `-p/--param`, `--params-file`, `-r/--remap` (`__node`, `__ns` and
    topic remaps) and `--log-level` inside `--ros-args ... [--]`; anything else
    inside is an error that names it.
    """
    out = RosArgs()
    args = list(argv)
    i = 0
    in_ros = False
    while i < len(args):
        arg = args[i]
        if not in_ros:
            if arg == ROS_ARGS:
                in_ros = True
            else:
                out.other.append(arg)
            i += 1
            continue
        if arg == END_ROS_ARGS:
            in_ros = False
            i += 1
            continue
        if arg == ROS_ARGS:
            i += 1
            continue
        if arg in ("-p", "--param", "--params-file", "-r", "--remap", "--log-level"):
            if i + 1 >= len(args):
                raise ConfigError(f"--ros-args: {arg} needs a value")
            value = args[i + 1]
            if arg in ("-p", "--param"):
                node, name, parsed = _param_rule(value)
                _merge(out, {node: {name: parsed}}, f"-p {value}")
                if node == WILDCARD:
                    out.wildcard_rules.append((name, parsed, value))
            elif arg == "--params-file":
                _merge(out, read_params_file(value), value)
            elif arg == "--log-level":
                out.log_level = value.split(":")[-1].lower()
            else:
                if ":=" not in value:
                    raise ConfigError(f"-r {value!r}: expected from:=to")
                source, target = value.split(":=", 1)
                if source == "__node" or source == "__name":
                    out.node_name = target
                elif source == "__ns":
                    out.namespace = "/" + target.strip("/")
                else:
                    out.remaps[source] = target
            i += 2
            continue
        raise ConfigError(f"--ros-args: unsupported argument {arg!r} "
                          "(supported: -p, --params-file, -r, --log-level)")
    return out


def fully_qualified_name(name: str, namespace: str | None) -> str:
    """'/ns/name' from a node name and namespace ('' or None for the root)."""
    ns = (namespace or "").strip("/")
    return f"/{ns}/{name}" if ns else f"/{name}"


def node_parameters(ros_args: RosArgs, node_fqn: str) -> dict[str, Any]:
    """The parameters of node `node_fqn`: the '/**' entries, overridden by its own (rclcpp's precedence)."""
    params: dict[str, Any] = {}
    for pattern in (WILDCARD, node_fqn):
        params.update(ros_args.overrides.get(pattern, {}))
    return params


def shadowed_overrides(ros_args: RosArgs, node_fqn: str) -> list[str]:
    """A warning for each `-p name:=value` for all nodes that node `node_fqn`'s own entry overrides."""
    own = ros_args.overrides.get(node_fqn, {})
    warnings = []
    for name, value, rule in ros_args.wildcard_rules:
        if name in own and own[name] != value:
            node = node_fqn.rsplit("/", 1)[-1]
            warnings.append(f"-p {rule} does not reach {node_fqn}: its own entry {name}: {own[name]!r} "
                            f"(from {ros_args.sources.get((node_fqn, name))}) wins, as in rclcpp; "
                            f"write -p {node}:{rule} to override it")
    return warnings


def wildcard_names(ros_args: RosArgs, node_fqn: str) -> frozenset[str]:
    """Parameters node `node_fqn` has only from entries for all nodes ('/**' and plain `-p`)."""
    return frozenset(set(ros_args.overrides.get(WILDCARD, {})) - set(ros_args.overrides.get(node_fqn, {})))


def own_parameters(cls: type, parameters: dict[str, Any], wildcard: frozenset[str] | set[str],
                   node: str) -> tuple[dict[str, Any], list[str]]:
    """The parameters meant for a node whose config is dataclass `cls`.

    A parameter set for all nodes (a name in `wildcard`) that `cls` does not have is
    another node's: it is left out, with a warning (rclcpp nodes ignore overrides they
    do not declare). Unknown names set for this node itself are kept, so that
    `config_from_parameters` reports them as errors.

    Returns:
      (the parameters kept, one warning per parameter left out).
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    kept, warnings = {}, []
    for name, value in parameters.items():
        if name in wildcard and name.split(".")[0] not in fields:
            warnings.append(f"parameter {name} (given to all nodes) is not a parameter of {node}: ignored here")
        else:
            kept[name] = value
    return kept, warnings


def write_params_file(path: str, parameters: dict[str, dict[str, Any]]) -> None:
    """Writes {node name: {dotted name: value}} as a `ros__parameters` YAML file."""
    tree = {node: {"ros__parameters": nest(values)} for node, values in parameters.items()}
    with open(path, "w") as f:
        yaml.safe_dump(tree, f, sort_keys=False)


def config_from_parameters(cls: type[T], parameters: dict[str, Any]) -> T:
    """A node's typed config (dataclass `cls`) from its ROS parameters (dotted names nest).

    Raises:
      ConfigError naming the parameter, e.g. "samlpes: unknown key (did you mean 'samples'?)".
    """
    return from_dict(cls, nest(parameters))


def parameters_of(config: Any) -> dict[str, Any]:
    """A config dataclass as flat ROS parameters (dotted names; tuples as lists)."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return {name: list(v) if isinstance(v, tuple) else v for name, v in flatten(values).items()}


def salvage_config(cls: type[T], parameters: dict[str, Any]) -> tuple[T, str | None]:
    """Like `config_from_parameters`, but a bad parameter does not lose the good ones.

    Returns:
      (the config, None), or (a config of every parameter that is acceptable on its
      own, defaults elsewhere; the first error) so a node can keep its topics and
      report what was wrong.
    """
    try:
        return config_from_parameters(cls, parameters), None
    except ConfigError as e:
        first = str(e)
    kept: dict[str, Any] = {}
    for name, value in parameters.items():
        try:
            config_from_parameters(cls, {**kept, name: value})
        except ConfigError:
            continue
        kept[name] = value
    return config_from_parameters(cls, kept), first
