"""MuJoCo simulation bridge: a simulator core without ROS, and the thin node that publishes it."""
