"""Typed configs: dataclasses built once from YAML or keyword dictionaries, checked on the way in."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names it and says what is allowed."""


def one_line(error: BaseException) -> str:
    """'Type: message' on one line, for a log line or an error that quotes a library's error (ONNX
    Runtime's and YAML parsers' messages span several lines)."""
    return " ".join(f"{type(error).__name__}: {error}".split())


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """Checks `value` against the annotated type, converting int to float where a float is wanted."""
    origin = typing.get_origin(kind)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        args = typing.get_args(kind)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(kind)[:1] or (Any,)
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if kind is Any:
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], values: dict[str, Any] | None, where: str = "") -> T:
    """Builds dataclass `cls` from `values`, rejecting unknown keys and wrong types.

    Args:
      cls: a dataclass type; its `__post_init__` may validate further.
      values: keys are field names; missing ones keep their defaults.
      where: prefix for error messages, e.g. 'planner'.

    Raises:
      ConfigError naming the key, e.g. "planner.samlpes: unknown key (did you mean 'samples'?)".
    """
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{where}." if where else ""
    for key in values:
        if key not in fields:
            valid = sorted(fields)
            raise ConfigError(f"{prefix}{key}: unknown key{_suggest(key, valid)}; valid keys: {', '.join(valid)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def check(condition: bool, where: str, message: str) -> None:
    """Raises ConfigError(f'{where}: {message}') unless `condition`."""
    if not condition:
        raise ConfigError(f"{where}: {message}")
