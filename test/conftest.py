"""Shared fixtures: tasks are built once per session (compiling MJCF takes a while)."""

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "disable")


@pytest.fixture(scope="session")
def tasks():
    from tdm_control.tasks import TASKS, make_task

    return {name: make_task(name) for name in TASKS}
