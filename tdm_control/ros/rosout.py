"""/rosout for the embedded transport: every log line a node writes, also as rcl_interfaces/msg/Log.

rcl publishes each log line of a node on /rosout (`rcl_logging_rosout_output_handler`): the
system-time stamp of the line, its level (10 debug .. 50 fatal), the logger's name, the text,
and the file, function and line that logged it; rqt_console, Foxglove's log panel and
`ros2 topic echo /rosout` read them. `RosoutLogger` does the same beside the console line,
with rcl's QoS for it (`rcl_qos_profile_rosout_default`: reliable, transient local, keep last
1000, lifespan 10 s, so a console that starts late still gets the last 10 s of lines).
Only lines the logger writes are published: a line left out by throttling is left out here too.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

from tdm_control.ros.interfaces import Log
from tdm_control.ros.messages import Time
from tdm_control.ros.transport import Logger

ROSOUT_TOPIC = "/rosout"
ROSOUT_DEPTH = 1000
ROSOUT_LIFESPAN_NS = 10_000_000_000
"""rcl_qos_profile_rosout_default: keep last 1000, lifespan 10 s."""
_THIS_FILE = os.path.abspath(__file__)
_LOGGER_FILE = os.path.abspath(sys.modules[Logger.__module__].__file__)
_LOGGER_FUNCTIONS = {"_write", "_log", "_admit", "debug", "info", "warning", "warn", "error", "fatal"}
"""Frames of the logger itself (this module, Logger's methods), skipped to find who logged."""


def logger_name(node_name: str, namespace: str = "") -> str:
    """rcl's logger name of a node: its namespace with dots, then its name ('/ns/a' + 'n' -> 'ns.a.n')."""
    parts = [p for p in namespace.split("/") if p] + [node_name]
    return ".".join(parts)


def call_site() -> tuple[str, str, int]:
    """(file, function, line) of the code that called the logger: the first frame outside the logger."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        path = os.path.abspath(code.co_filename)
        if path != _THIS_FILE and not (path == _LOGGER_FILE and code.co_name in _LOGGER_FUNCTIONS):
            return code.co_filename, code.co_name, frame.f_lineno
        frame = frame.f_back
    return "", "", 0


def log_message(level: str, text: str, name: str, stamp_ns: int | None = None,
                where: tuple[str, str, int] | None = None) -> Log:
    """The Log message of one line: `level` a Logger level name, `stamp_ns` system time (default now)."""
    file, function, line = where or call_site()
    return Log(stamp=Time.from_ns(time.time_ns() if stamp_ns is None else stamp_ns),
               level=Logger.LEVELS[level], name=name, msg=text, file=file, function=function, line=line)


class RosoutLogger(Logger):
    """A `Logger` whose written lines also go to /rosout, once `attach`ed to a publisher.

    A failure to publish (the node is closing) never loses the console line or raises.
    """

    def __init__(self, name: str, level: str = "info", stream=None, ros_name: str | None = None) -> None:
        super().__init__(name, level, stream)
        self.ros_name = ros_name or name
        self._publish: Callable[[Any], None] | None = None

    def attach(self, publish: Callable[[Any], None] | None) -> None:
        """Lines from now on are also passed to `publish(Log)`; None stops that."""
        self._publish = publish

    def _write(self, level: str, message: str) -> None:
        super()._write(level, message)
        publish = self._publish
        if publish is None:
            return
        try:
            publish(log_message(level, message, self.ros_name))
        except Exception:  # noqa: BLE001 - /rosout is a copy; the console line was written
            self._publish = None
