"""tdm_control: ament_python package (colcon build) that also installs with `pip install -e .`."""

import glob
import os

from setuptools import find_packages, setup

PACKAGE = "tdm_control"

# The one place where dependency versions are pinned. ROS 2 (rclpy, launch) comes from a
# sourced workspace, not from pip; without it the nodes use the embedded DDS transport.
RUNTIME = [
    "numpy>=1.26,<3",
    "pyyaml>=6.0",
    "tqdm>=4.66",
    "mujoco==3.17.0",  # 4.x breaks dm_control 1.0.50 ('MjModel' has no attribute 'flex_vertedge')
    "dm_control==1.0.50",
    "matplotlib>=3.8",
]
EXTRAS = {
    # CPU inference; `gpu` swaps in the CUDA build (both install the module `onnxruntime`,
    # so an environment holds one of them).
    "cpu": ["onnxruntime==1.31.1"],
    "gpu": ["onnxruntime-gpu==1.31.1"],
    # rosbags reads and writes rosbag2 (MCAP, sqlite3): `tdm-train import-bag` and `launch --record`.
    "train": ["torch==2.13.0", "onnx==1.23.2", "onnxscript==0.7.2", "tensorboard>=2.15", "rosbags==0.11.9"],
    "ros": ["cyclonedds==11.0.1", "rosbags==0.11.9"],
    # MP4 for `--video` (an ffmpeg binary in the wheel); without it videos are written as GIF.
    "video": ["imageio-ffmpeg==0.6.0"],
    # Tests: mcap + mcap-ros2-support read recorded bags independently (decoding with the definitions
    # in the file, as Foxglove does); colcon builds the package as a ROS 2 workspace does (colcon-core
    # holds setuptools below 80).
    "dev": ["pytest>=8", "rosbags==0.11.9", "ruff==0.17.6", "mcap==1.6.0", "mcap-ros2-support==0.6.0",
            "colcon-core==0.21.3", "colcon-ros==0.5.0", "colcon-python-setup-py==0.2.9", "imageio-ffmpeg==0.6.0"],
}


def data_files():
    files = [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ]
    for folder in ("launch", "config", "models"):
        paths = sorted(p for p in glob.glob(f"{folder}/*") if os.path.isfile(p))
        if paths:
            files.append((f"share/{PACKAGE}/{folder}", paths))
    return files


setup(
    name=PACKAGE,
    version="0.1.0",
    description="Model predictive control with a transformer dynamics model, for ROS 2 and MuJoCo",
    packages=find_packages(include=["tdm_control", "tdm_control.*", "sim_bridge", "sim_bridge.*",
                                    "training", "training.*"]),
    data_files=data_files(),
    python_requires=">=3.10",
    install_requires=RUNTIME,
    extras_require=EXTRAS,
    zip_safe=True,
    maintainer="tdm_control maintainers",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "tdm-control = tdm_control.cli:main",
            "tdm-train = training.cli:main",
            "sim_bridge = sim_bridge.bridge_node:main",  # ros2 run tdm_control sim_bridge
            "planner_node = tdm_control.nodes.planner_node:main",  # ros2 run tdm_control planner_node
        ],
    },
)
