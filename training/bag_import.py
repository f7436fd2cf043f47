"""`tdm-train import-bag`: a robot's ROS 2 bags become the dataset format that `tdm-train fit` reads.

    tdm-train import-bag --task cartpole_swingup --out data/cartpole_bags bags/run1 bags/run2

A robot without a ground-truth model has logs: rosbag2 folders (MCAP or sqlite3) of
`sensor_msgs/JointState` and the `std_msgs/Float64MultiArray` effort commands that were sent
(ros2_control's JointGroupEffortController convention), as `tdm-control launch --record` or
`ros2 bag record` writes them. Each bag is read in the order it was recorded:

* **joints by name**: a joint state is read by joint name into the task's joint order
  (`JointStateReader`), so the bag's order is irrelevant; commands are in `joints` order (the
  controller's `joints` parameter; default the task's actuator order) and become actions through the
  inverse of the actuator gear, clamped to the actuator range (`Task.torque_to_control`), as the
  simulation bridge applies them;
* **resampled by header stamp** to the task's control timestep: grid point j is the first state's
  stamp plus j control timesteps; a state stamped on it is taken as is, else positions and velocities
  are interpolated linearly between the states around it. A command answers the newest state received
  before it; the action of control step j is the newest command answering a state stamped before
  grid point j plus half a step (in lockstep: exactly the command that answered state j);
* **episodes** split where an episode is announced (`/sim_bridge/episode`), where `/clock` goes back
  (a simulation reset), and at gaps between joint-state stamps longer than `max_gap`. The last state
  of an episode has no command after it, so an episode of T recorded states gives T - 1 steps;
* **rewards** from `/reward` where recorded (a reward received after a step's state is that step's,
  as the bridge publishes it), else the task's reward of the observation reached and the action taken.

With `action_repeat` R > 1 a dataset step spans R control steps, whose actions must be one held
action (as a planner with the model's action repeat sends them). The dataset's `dataset.json` records
where it came from: each bag's path and the sha256 of its files, the topics, and where each episode
began. Bad or partial bags are refused with an `ImportBagError` naming the bag, the topic and the
stamp: a missing topic, a joint the task needs that never appears, a command of the wrong length,
stamps that go backwards; a bag too short to give an episode of `min_steps` is refused with the
number of steps it gives.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from tdm_control import topics
from tdm_control.config import check, one_line
from tdm_control.files import write_json
from tdm_control.nodes.joints import BadInput, CommandLayout, JointStateReader
from tdm_control.tasks import Task, make_task
from training.dataset import FORMAT, POLICIES, VERSION, Episode, save_episode
from training.errors import TrainingError

LOGGED = 3
"""POLICIES label of imported actions: whatever controller drove the robot."""
STAMP_TOLERANCE_NS = 1000
"""A state stamped within 1 µs of a grid point is on it (stamps are integers of ns; a simulation's are exact)."""
TYPES = {"joint_states": "sensor_msgs/msg/JointState", "commands": "std_msgs/msg/Float64MultiArray",
         "reward": "std_msgs/msg/Float64", "episode": "std_msgs/msg/Int32", "clock": "rosgraph_msgs/msg/Clock"}
"""The message type each topic role must have."""


REPAIR = ("leave this bag out, or salvage what it holds (`mcap recover` for an MCAP file cut short, "
          "`ros2 bag reindex` for a lost metadata.yaml) and import the copy")
"""What to do about a damaged bag."""


class ImportBagError(TrainingError):
    """A bag that cannot become a dataset; the message names the bag, topic and stamp."""


@dataclasses.dataclass(frozen=True)
class ImportConfig:
    """How bags are read: `tdm-train import-bag` options."""

    task: str
    """Registered task whose joints, observation, gear and reward the bags are read with."""
    joints: tuple[str, ...] = ()
    """Actuated joints in the order of the command array (the controller's `joints`); empty: actuator order."""
    action_repeat: int = 1
    """Control steps per dataset step (the action repeat a model trained on it plans at)."""
    max_gap: float = 0.0
    """Seconds between two joint-state stamps beyond which an episode ends; 0: 2.5 control timesteps."""
    min_steps: int = 10
    """Dataset steps an episode needs to be kept; a bag with none that long is refused."""
    joint_states_topic: str = topics.JOINT_STATES
    """sensor_msgs/JointState (required)."""
    command_topic: str = topics.COMMANDS
    """std_msgs/Float64MultiArray effort commands in `joints` order, N·m (N for slide joints) (required)."""
    reward_topic: str = topics.REWARD
    """std_msgs/Float64 reward of each step (optional: else the task reward)."""
    episode_topic: str = topics.EPISODE
    """std_msgs/Int32 episode announcements (optional)."""
    clock_topic: str = topics.CLOCK
    """rosgraph_msgs/Clock (optional): a clock that goes back starts an episode."""

    def __post_init__(self) -> None:
        check(self.action_repeat >= 1, "action_repeat", f"must be >= 1, got {self.action_repeat}")
        check(self.max_gap >= 0, "max_gap", f"must be >= 0 s, got {self.max_gap}")
        check(self.min_steps >= 1, "min_steps", f"must be >= 1, got {self.min_steps}")

    def topics(self) -> dict[str, str]:
        """Role -> topic name (roles as in TYPES)."""
        return {"joint_states": self.joint_states_topic, "commands": self.command_topic,
                "reward": self.reward_topic, "episode": self.episode_topic, "clock": self.clock_topic}


@dataclasses.dataclass
class Segment:
    """One episode's messages as read from a bag, before resampling."""

    boundary: str
    """What started it: 'start of the bag', 'episode 3 announced', 'clock reset', 'gap of 0.5 s'."""
    stamps: list[int] = dataclasses.field(default_factory=list)
    """Joint-state header stamps (ns), strictly increasing."""
    positions: list[np.ndarray] = dataclasses.field(default_factory=list)
    """(J,) each, task joint order."""
    velocities: list[np.ndarray] = dataclasses.field(default_factory=list)
    commands: list[tuple[int, np.ndarray]] = dataclasses.field(default_factory=list)
    """(stamp of the state answered (ns), torques (m,) in actuator order)."""
    rewards: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    """(stamp of the state the step started from (ns), reward)."""


def seconds(stamp_ns: int) -> str:
    return f"{stamp_ns * 1e-9:.6f} s"


def bag_digest(path: str) -> str:
    """sha256 over the bag folder's files (names and bytes, in name order): names the data imported."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        file = os.path.join(path, name)
        if os.path.isfile(file):
            digest.update(name.encode() + b"\0")
            with open(file, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _open(path: str):
    """An open rosbags AnyReader of one rosbag2 folder."""
    from tdm_control.ros.bag import _rosbags, typestore

    _rosbags()  # a clear ImportError when rosbags is missing
    from rosbags.highlevel import AnyReader

    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "metadata.yaml")):
        raise ImportBagError(f"{path} is not a rosbag2 folder (a folder with metadata.yaml and its storage file)")
    reader = AnyReader([Path(path)], default_typestore=typestore())
    try:
        reader.open()
    except Exception as e:  # noqa: BLE001 - rosbags' errors say what is wrong with the file
        raise ImportBagError(f"{path}: cannot be read as a rosbag2 ({one_line(e)}); {REPAIR}") from None
    return reader


def read_messages(path: str, config: ImportConfig) -> Iterator[tuple[str, int, Any]]:
    """(role, log time (ns), decoded message) of the bag's topics that `config` names, in recorded order.

    Raises ImportBagError for a required topic that is missing or empty, or any topic of the wrong type.
    """
    reader = _open(path)
    try:
        roles = {topic: role for role, topic in config.topics().items()}
        present = {c.topic: c for c in reader.connections}
        for role in ("joint_states", "commands"):
            topic = config.topics()[role]
            if topic not in present:
                raise ImportBagError(f"{path}: no topic {topic} ({TYPES[role]}) in the bag; it has: "
                                     f"{', '.join(sorted(present)) or 'none'}")
        connections = [c for c in reader.connections if c.topic in roles]
        for c in connections:
            role = roles[c.topic]
            if c.msgtype != TYPES[role]:
                raise ImportBagError(f"{path}: topic {c.topic} holds {c.msgtype}, not {TYPES[role]}")
        counts = {topic: sum(c.msgcount for c in connections if c.topic == topic) for topic in roles}
        for role in ("joint_states", "commands"):
            topic = config.topics()[role]
            if counts[topic] == 0:
                raise ImportBagError(f"{path}: topic {topic} has no messages")
        messages = reader.messages(connections=connections)
        last_ns = None  # log time of the last message read whole
        while True:
            try:
                connection, log_ns, raw = next(messages)
            except StopIteration:
                break
            except Exception as e:  # noqa: BLE001 - a damaged storage file: say where it broke
                after = "before its first message" if last_ns is None else f"after log time {seconds(last_ns)}"
                raise ImportBagError(f"{path}: the bag is damaged {after} ({one_line(e)}); {REPAIR}") from None
            try:
                message = reader.deserialize(raw, connection.msgtype)
            except Exception as e:  # noqa: BLE001 - bytes that are not the message its topic holds
                raise ImportBagError(f"{path}: a message on {connection.topic} at log time {seconds(log_ns)} "
                                     f"is not a valid {connection.msgtype} ({one_line(e)}); {REPAIR}") from None
            last_ns = log_ns
            yield roles[connection.topic], log_ns, message
    finally:
        reader.close()


def _joint_names_seen(path: str, config: ImportConfig) -> set[str]:
    return {name for role, _, m in read_messages(path, config) if role == "joint_states" for name in m.name}


def read_segments(path: str, task: Task, config: ImportConfig) -> tuple[list[Segment], dict[str, int]]:
    """A bag's episodes, split at announcements, clock resets and gaps, before resampling.

    Returns:
      the segments in order, and counts of what was skipped (re-sent states, commands and
      rewards that answer no state of an episode).
    """
    reader = JointStateReader(task)
    layout = CommandLayout(task, config.joints)
    topics = config.topics()
    max_gap_ns = round((config.max_gap or 2.5 * task.control_timestep) * 1e9)
    segments: list[Segment] = []
    current: Segment | None = None
    boundary: str | None = None  # why the next episode starts
    last_clock: int | None = None
    skipped = {"repeated_states": 0, "unanswered_commands": 0, "unplaced_rewards": 0}

    def close(reason: str) -> None:
        """Ends the running episode; `reason` starts the next (the first reason since the last state counts)."""
        nonlocal current, boundary
        if current is not None:
            segments.append(current)
            current, boundary = None, reason
        elif boundary is None:
            boundary = reason

    for role, log_ns, message in read_messages(path, config):
        if role == "episode":
            close(f"episode {message.data} announced")
        elif role == "clock":
            now = message.clock.sec * 1_000_000_000 + message.clock.nanosec
            if last_clock is not None and now < last_clock:
                close(f"clock reset from {seconds(last_clock)} to {seconds(now)}")
            last_clock = now
        elif role == "joint_states":
            stamp = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
            try:
                q, v = reader.read(message.name, message.position, message.velocity)
            except BadInput as e:
                missing = [j for j in task.joint_names if j not in message.name]
                never = [j for j in missing if j not in _joint_names_seen(path, config)] if missing else []
                if never:
                    raise ImportBagError(f"{path}: joint(s) {never} that {task.name} needs never appear on "
                                         f"{topics['joint_states']} (first state without them stamped "
                                         f"{seconds(stamp)}; joints in it: {list(message.name)})") from None
                raise ImportBagError(f"{path}: {topics['joint_states']} stamped {seconds(stamp)}: {e}") from None
            if current is not None and current.stamps:
                last = current.stamps[-1]
                if stamp == last:
                    if not (np.array_equal(q, current.positions[-1]) and np.array_equal(v, current.velocities[-1])):
                        raise ImportBagError(f"{path}: two different joint states on {topics['joint_states']} "
                                             f"are stamped {seconds(stamp)}")
                    skipped["repeated_states"] += 1  # a state sent again (lockstep re-sends until answered)
                    continue
                if stamp < last:
                    raise ImportBagError(
                        f"{path}: stamps go backwards on {topics['joint_states']}: {seconds(stamp)} after "
                        f"{seconds(last)}, with no episode announcement on {topics['episode']} or clock reset on "
                        f"{topics['clock']} between")
                if stamp - last > max_gap_ns:
                    close(f"gap of {(stamp - last) * 1e-9:.3f} s in {topics['joint_states']} after {seconds(last)}")
            if current is None:
                current, boundary = Segment(boundary or "start of the bag"), None
            current.stamps.append(stamp)
            current.positions.append(q)
            current.velocities.append(v)
        elif role == "commands":
            where = (f"the state stamped {seconds(current.stamps[-1])}" if current is not None and current.stamps
                     else f"log time {seconds(log_ns)}")
            try:
                torque = layout.torque(message.data)
            except BadInput as e:
                raise ImportBagError(f"{path}: {topics['commands']} after {where}: {e}") from None
            if current is None or not current.stamps:
                skipped["unanswered_commands"] += 1
                continue
            current.commands.append((current.stamps[-1], torque))
        elif role == "reward":
            if current is None or not current.stamps:
                skipped["unplaced_rewards"] += 1
                continue
            current.rewards.append((current.stamps[-1], float(message.data)))
    close("end of the bag")
    return segments, skipped


def _interpolate(stamps: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """values (S, J) at stamps (S,) -> (G, J) at grid (G,): exact on a stamp (within STAMP_TOLERANCE_NS),
    else linear between the stamps around it."""
    right = np.clip(np.searchsorted(stamps, grid), 1, len(stamps) - 1)  # (G,)
    left = right - 1
    span = (stamps[right] - stamps[left]).astype(np.float64)
    weight = ((grid - stamps[left]) / span)[:, None]  # (G, 1)
    out = values[left] * (1.0 - weight) + values[right] * weight
    nearest = np.where(np.abs(grid - stamps[left]) <= np.abs(grid - stamps[right]), left, right)
    exact = np.abs(grid - stamps[nearest]) <= STAMP_TOLERANCE_NS
    out[exact] = values[nearest[exact]]
    return out


def resample(segment: Segment, task: Task, config: ImportConfig, path: str) -> dict[str, Any] | None:
    """One segment on the task's control grid, as dataset arrays; None when it has no complete step.

    Returns:
      observations (T+1, n), actions (T, m), rewards (T+1,), episode_return, the control steps'
      source of rewards ('recorded', 'task' or 'both'), and where the episode began (stamp, ns).
    """
    step_ns = round(task.control_timestep * 1e9)
    stamps = np.asarray(segment.stamps, dtype=np.int64)  # (S,)
    if len(stamps) < 2 or not segment.commands:
        return None
    count = int((stamps[-1] - stamps[0] + STAMP_TOLERANCE_NS) // step_ns) + 1
    grid = stamps[0] + step_ns * np.arange(count, dtype=np.int64)  # (G,) ns
    positions = _interpolate(stamps, np.asarray(segment.positions), grid)  # (G, J)
    velocities = _interpolate(stamps, np.asarray(segment.velocities), grid)
    # The action of control step j: the newest command answering a state stamped before grid[j] + step/2.
    answered = np.asarray([s for s, _ in segment.commands], dtype=np.int64)  # (C,)
    newest = np.searchsorted(answered, grid + step_ns // 2, side="left") - 1  # (G,) index, -1: none yet
    has_action = newest >= 0
    first = int(np.argmax(has_action)) if has_action.any() else count
    control_steps = count - 1 - first  # control steps with an action and a state after them
    repeat = config.action_repeat
    steps = control_steps // repeat
    if steps < 1:
        return None
    used = slice(first, first + steps * repeat + 1)  # grid points of the episode
    grid, positions, velocities, newest = grid[used], positions[used], velocities[used], newest[used]
    torques = np.stack([segment.commands[i][1] for i in newest[:-1]])  # (steps * R, m) actuator order
    controls = task.torque_to_control(torques)  # (steps * R, m) the actions applied, in [-1, 1]
    held = controls.reshape(steps, repeat, -1)  # (T, R, m)
    changed = np.flatnonzero(np.any(held != held[:, :1], axis=(1, 2)))
    if changed.size:
        t = int(changed[0])
        raise ImportBagError(
            f"{path}: the commands on {config.command_topic} change within the dataset step of {repeat} control "
            f"steps from the state stamped {seconds(int(grid[t * repeat]))}; a model with action repeat {repeat} "
            f"plans actions held that long, so import with --action-repeat 1 (or log a controller that holds them)")
    observations = task.observation(positions, velocities)  # (steps * R + 1, n)
    # The reward of control step j (on arriving at grid point j + 1): recorded, else the task's.
    recorded = {}
    for stamp, value in segment.rewards:
        recorded[int(np.rint((stamp - grid[0]) / step_ns))] = value  # the newest for its step
    task_rewards = task.reward(observations[1:], controls)  # (steps * R,)
    per_step = np.array([recorded.get(j, task_rewards[j]) for j in range(steps * repeat)])
    sources = {"recorded" if j in recorded else "task" for j in range(steps * repeat)}
    rewards = np.zeros(steps + 1)
    rewards[1:] = per_step[repeat - 1::repeat]  # the reward of each dataset step's last control step
    return {"observations": observations[::repeat], "actions": held[:, 0], "rewards": rewards,
            "episode_return": float(per_step.sum()),
            "rewards_from": sources.pop() if len(sources) == 1 else "both",
            "start_stamp_ns": int(grid[0])}


def import_bags(paths: Sequence[str], out: str, config: ImportConfig) -> dict[str, Any]:
    """Reads every bag in `paths` and writes the dataset folder `out` (new, or empty).

    Returns:
      the `import` section written to dataset.json: bags (path, sha256, episodes), topics,
      episodes (bag, boundary, start stamp, steps, where the rewards came from), skipped counts.

    Raises:
      ImportBagError for a bad or short bag (nothing is written then), or an `out` that holds files.
    """
    if not paths:
        raise ImportBagError("no bag given")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ImportBagError(f"{out} exists and is not an empty folder; import into a new folder")
    task = make_task(config.task)
    CommandLayout(task, config.joints)  # a bad joints list fails before any reading
    episodes: list[Episode] = []
    bags, described = [], []
    skipped_total: Counter[str] = Counter()
    for b, path in enumerate(paths):
        segments, skipped = read_segments(path, task, config)
        skipped_total.update(skipped)
        kept, longest = 0, 0
        for segment in segments:
            arrays = resample(segment, task, config, path)
            steps = 0 if arrays is None else len(arrays["actions"])
            longest = max(longest, steps)
            if steps < config.min_steps:  # counted, so the summary says what was left out
                skipped_total["episodes_shorter_than_min_steps"] += 1
                continue
            index = len(episodes)
            episodes.append(Episode(arrays["observations"], arrays["rewards"], arrays["actions"],
                                    np.full(steps, LOGGED, dtype=np.int8), seed=index,
                                    episode_return=arrays["episode_return"]))
            described.append({"index": index, "bag": b, "boundary": segment.boundary, "steps": steps,
                              "start_stamp_s": arrays["start_stamp_ns"] * 1e-9,
                              "rewards_from": arrays["rewards_from"]})
            kept += 1
        if not kept:
            raise ImportBagError(
                f"{path}: too short: its longest episode gives {longest} dataset step(s) of "
                f"{config.action_repeat * task.control_timestep:g} s ({len(segments)} episode(s) found); "
                f"at least {config.min_steps} are needed (--min-steps)")
        bags.append({"path": os.path.abspath(path), "sha256": bag_digest(path), "episodes": kept})
    section = {"bags": bags, "topics": config.topics(), "joints": list(CommandLayout(task, config.joints).joints),
               "max_gap_s": config.max_gap or 2.5 * task.control_timestep, "min_steps": config.min_steps,
               "episodes": described, "skipped": dict(skipped_total)}
    meta = {"format": FORMAT, "version": VERSION, "task": task.describe(),
            "collect": {"task": task.name, "action_repeat": config.action_repeat, "source": "import-bag"},
            "policies": {str(k): v for k, v in POLICIES.items()}, "import": section}
    os.makedirs(out, exist_ok=True)
    for index, episode in enumerate(episodes):
        save_episode(out, index, episode)
    write_json(os.path.join(out, "dataset.json"), meta)
    return section
