"""The planner node: its core (no ROS), joint mapping, and the thin ROS shell."""
