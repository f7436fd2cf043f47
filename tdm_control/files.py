"""Reading and writing the project's files: YAML configs with clear errors, JSON results atomically."""

from __future__ import annotations

import json
import os
from typing import Any

import yaml

from tdm_control.config import ConfigError


def read_yaml(path: str, what: str = "file", mapping: bool = True) -> Any:
    """The YAML document at `path`.

    Args:
      what: what the file is ('grid file', 'training config', ...), for the error message.
      mapping: require a mapping at the top level (an empty file reads as {}).

    Raises:
      ConfigError naming the file when it is missing, unreadable, not YAML or not a mapping.
    """
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a folder, not a file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {path} is not valid YAML: {e}") from None
    if mapping:
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise ConfigError(f"{what} {path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def write_json(path: str, payload: Any, indent: int | None = 2) -> None:
    """Writes `payload` as JSON atomically (a reader sees the old file or the new one, never half),
    creating the folder. Concurrent writers each write their own temporary file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=indent)
        f.write("\n")
    os.replace(tmp, path)
