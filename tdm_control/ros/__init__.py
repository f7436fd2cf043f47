"""ROS 2 plumbing: message types, the node interface and its two transports, parameters."""
