"""The closed loop's topic names, as ROS 2 conventions have them: the one home of their defaults.

The bridge, the planner node and the bag importer each take their topics as parameters; these are
the defaults all three start from, so a loop wired by defaults is wired the same everywhere.
"""

JOINT_STATES = "/joint_states"
"""sensor_msgs/JointState: every joint by name, stamped with simulation time."""
COMMANDS = "/effort_controller/commands"
"""std_msgs/Float64MultiArray: torques in `joints` order (ros2_control JointGroupEffortController)."""
CLOCK = "/clock"
"""rosgraph_msgs/Clock: simulation time."""
REWARD = "/reward"
"""std_msgs/Float64: the task reward of each step."""
EPISODE = "/sim_bridge/episode"
"""std_msgs/Int32 (latched): the running episode, as the bridge (node `sim_bridge`) announces it."""
