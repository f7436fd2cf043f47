"""Joint states are read by name and commands laid out by the `joints` list; bad values are refused."""

import numpy as np
import pytest

from tdm_control.config import ConfigError
from tdm_control.nodes.joints import BadInput, CommandLayout, JointStateReader


def test_joint_state_is_mapped_by_name_with_extra_joints_ignored(tasks):
    task = tasks["cartpole_swingup"]
    reader = JointStateReader(task)
    q, v = reader.read(["camera", "hinge_1", "slider"], [9.0, 0.5, -0.2], [9.0, 2.0, -1.0])
    np.testing.assert_array_equal(q, [-0.2, 0.5])
    np.testing.assert_array_equal(v, [-1.0, 2.0])


@pytest.mark.parametrize("names, positions, velocities, message", [
    (["slider"], [0.0], [0.0], "missing joint(s) ['hinge_1']"),
    (["slider", "hinge_1"], [0.0, float("nan")], [0.0, 0.0], "position[hinge_1]=nan"),
    (["slider", "hinge_1"], [0.0, 0.0], [float("inf"), 0.0], "velocity[slider]=inf"),
    (["slider", "hinge_1"], [0.0, 0.0], [0.0], "2 names, 2 positions and 1 velocities"),
    (["slider", "hinge_1"], [0.0, 0.0], [], "2 names, 2 positions and 0 velocities"),
    (["slider", "slider", "hinge_1"], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], "names joint 'slider' twice"),
])
def test_bad_joint_states_say_what_is_wrong(tasks, names, positions, velocities, message):
    with pytest.raises(BadInput) as e:
        JointStateReader(tasks["cartpole_swingup"]).read(names, positions, velocities)
    assert message in str(e.value)


def test_a_non_finite_value_of_an_ignored_joint_is_fine(tasks):
    q, _ = JointStateReader(tasks["cartpole_swingup"]).read(["slider", "hinge_1", "camera"], [0.1, 0.2, np.nan],
                                                            [0.0, 0.0, np.inf])
    np.testing.assert_array_equal(q, [0.1, 0.2])


def test_command_layout_follows_the_joints_list(tasks):
    task = tasks["walker_stand"]
    joints = ["left_ankle", "right_hip", "left_hip", "right_knee", "left_knee", "right_ankle"]
    layout = CommandLayout(task, joints)
    torque = np.arange(6.0) + 1  # actuator order: right hip, knee, ankle, left hip, knee, ankle
    command = layout.command(torque)
    np.testing.assert_array_equal(command, [6, 1, 4, 2, 5, 3])
    np.testing.assert_array_equal(layout.torque(command), torque)
    assert CommandLayout(task).joints == task.actuated_joint_names


@pytest.mark.parametrize("joints", [["slider", "slider"], ["hinge_1"], ["slider", "hinge_1"]])
def test_joints_must_be_the_actuated_joints(tasks, joints):
    with pytest.raises(ConfigError, match=r"joints: .* must list each actuated joint of cartpole_swingup once"):
        CommandLayout(tasks["cartpole_swingup"], joints)


@pytest.mark.parametrize("command, message", [
    ([1.0, 2.0], "command has 2 values; expected 1, one per joint ['slider']"),
    ([], "command has 0 values; expected 1"),
    ([float("nan")], "non-finite values: slider=nan"),
    ([float("-inf")], "non-finite values: slider=-inf"),
])
def test_bad_commands_say_what_is_wrong(tasks, command, message):
    with pytest.raises(BadInput) as e:
        CommandLayout(tasks["cartpole_swingup"], ["slider"]).torque(command)
    assert message in str(e.value)
