"""Helpers for the tests that run real nodes: a private DDS domain per test, node processes, probes.

Every test that talks DDS gets its own ROS_DOMAIN_ID, so concurrent test runs on
one machine (and processes a failed test left behind) never see each other.
Waiting is always on a condition with a generous deadline, never a fixed sleep.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARTPOLE_CONFIG = os.path.join(ROOT, "config", "cartpole.yaml")
DEADLINE_S = 60.0
"""How long a test waits for something that normally takes well under a second (2 shared cores)."""

DOMAINS = range(1, 230)
"""DDS domains tests may use (0 is left to whatever else runs on the machine)."""
_used: set[int] = set()


def _claim_domain() -> tuple[int, object]:
    """A domain no other test (in this or a concurrent test run) holds: an flock per domain.

    The lock goes away with the process that holds it, so a crashed run frees its domains.
    """
    candidates = [d for d in DOMAINS if d not in _used]
    random.Random(os.getpid() ^ time.time_ns()).shuffle(candidates)
    for domain in candidates:
        lock = open(os.path.join(tempfile.gettempdir(), f"tdm_control-test-ros-domain-{domain}.lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        _used.add(domain)  # never reused in this run: a straggling process of an earlier test may linger
        return domain, lock
    raise RuntimeError("no free DDS domain for the test")


TEST_DISCOVERY = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_STATIC_PEERS": "", "ROS_LOCALHOST_ONLY": "",
                  "CYCLONEDDS_URI": ""}
"""Discovery of the tests: this machine only (ROS 2's LOCALHOST range: unicast to localhost, no multicast),
so that test runs on other machines of the network that happen to use the same domain are never seen."""


@pytest.fixture
def ros_domain():
    """A DDS domain of this test's own (ROS_DOMAIN_ID, inherited by node processes), on this machine only."""
    settings = {"ROS_DOMAIN_ID": None, **TEST_DISCOVERY}
    previous = {name: os.environ.get(name) for name in settings}
    domain, lock = _claim_domain()
    os.environ.update({**TEST_DISCOVERY, "ROS_DOMAIN_ID": str(domain)})
    try:
        yield domain
    finally:
        lock.close()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class NodeProcess:
    """A node (or the launcher) in a child process; its merged output is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.args = args
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1", MUJOCO_GL="disable", **(env or {})))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def node(cls, module: str, *ros_args: str, **kw) -> NodeProcess:
        return cls(["-m", module, "--ros-args", *ros_args], **kw)

    def _read(self) -> None:
        for line in iter(self.process.stdout.readline, ""):
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for_output(self, pattern: str, timeout: float = DEADLINE_S) -> re.Match:
        """Waits until a line matches regex `pattern`; fails the test with the output so far if none does."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.lines:
                    match = regex.search(line)
                    if match:
                        return match
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                with self._lock:
                    if any(regex.search(line) for line in self.lines):
                        continue
                pytest.fail(f"process exited ({self.process.returncode}) before printing {pattern!r}:\n{self.output}")
            time.sleep(0.02)
        pytest.fail(f"no line matching {pattern!r} within {timeout} s:\n{self.output}")

    def wait(self, timeout: float = DEADLINE_S) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"process did not exit within {timeout} s:\n{self.output}")
        self._reader.join(timeout=5)
        return code

    def interrupt(self, timeout: float = DEADLINE_S) -> int:
        """SIGINT, as Ctrl-C; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def spin_until(node, condition, timeout: float = DEADLINE_S, what: str = "condition") -> None:
    """Spins an in-process node until `condition()` holds; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        node.spin_once(0.05)


def params_args(tmp_path, overrides: dict[str, dict], base: str = CARTPOLE_CONFIG) -> list[str]:
    """`--params-file base --params-file <overrides>`: node-specific overrides win, as in `ros2 launch`."""
    from tdm_control.ros.params import write_params_file

    path = tmp_path / f"overrides-{len(list(tmp_path.glob('overrides-*')))}.yaml"
    write_params_file(str(path), overrides)
    return ["--params-file", base, "--params-file", str(path)]


def models_a_cartpole_planner_must_refuse(tmp_path, walker_model: str) -> list[tuple[str, str]]:
    """(model parameter, text its error must contain) for models that cannot plan for cartpole.

    `walker_model` is an exported TDM made for walker_stand (the `walker_model` fixture).
    """
    not_onnx = tmp_path / "not_a_model.onnx"
    not_onnx.write_text("this is not an ONNX file\n")
    return [
        (str(tmp_path / "missing.onnx"), "missing.onnx"),
        (str(not_onnx), "not_a_model.onnx"),
        ("transformer", "transformer"),
        (walker_model, "made for task 'walker_stand', not 'cartpole_swingup'"),
    ]
