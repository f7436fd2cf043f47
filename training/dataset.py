"""Episodes on disk, and the token windows a sequence model trains on.

On-disk format (a folder):

    dataset.json          what the data is: task description (joint names, observation
                          layout, control timestep, actuators), the data policy that
                          made it, the format version
    episode_000000.npz    one episode each:
        observations (T+1, n) float64  o_0 .. o_T
        rewards      (T+1,)   float64  r_t received on arriving at o_t (r_0 = 0)
        actions      (T, m)   float64  a_t applied at o_t, in [-1, 1]
        policy       (T,)     int8     which policy chose a_t (POLICIES)
        seed         ()       int64    the seed the episode was drawn with
        episode_return ()     float64  sum of the rewards of every control step

A dataset step spans `collect.action_repeat` control steps (dataset.json): the
action is held that long, o_{t+1} is observed at its end, and r_{t+1} is the
reward of its last control step.

Episodes are written atomically (temporary file, then rename), so a folder is
always readable and an interrupted collection resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
from typing import Any, Sequence

import numpy as np

from tdm_control.files import write_json
from tdm_control.tokenizer import Role, Tokenizer
from training.errors import TrainingError

FORMAT = "tdm_control.dataset"
VERSION = 1
POLICIES = {0: "brownian", 1: "mpc", 2: "model_mpc", 3: "logged"}
"""Per-step policy labels: Brownian-noise actions, the ground-truth MPC planner's (plus noise),
the MPC planner's on an exported model (on-policy data: a dynamics target, never a behaviour-cloning
target, since the model's own choices are not expert actions), or whatever controller drove a robot
whose ROS 2 bag was imported (`tdm-train import-bag`; a dynamics target too: nobody vouches for it)."""


@dataclasses.dataclass
class Episode:
    observations: np.ndarray  # (T+1, n)
    rewards: np.ndarray  # (T+1,)
    actions: np.ndarray  # (T, m)
    policy: np.ndarray  # (T,) int8
    seed: int
    episode_return: float = float("nan")  # sum over every control step (NaN if not recorded)
    source: int = 0  # which of the folders given to load_datasets it came from (not stored)

    def __len__(self) -> int:
        return len(self.actions)


def episode_path(folder: str, index: int) -> str:
    return os.path.join(folder, f"episode_{index:06d}.npz")


def save_episode(folder: str, index: int, episode: Episode) -> str:
    """Writes episode `index` atomically; returns its path."""
    path = episode_path(folder, index)
    tmp = f"{path}.tmp{os.getpid()}.npz"
    np.savez(tmp, observations=episode.observations, rewards=episode.rewards, actions=episode.actions,
             policy=episode.policy, seed=np.int64(episode.seed), episode_return=np.float64(episode.episode_return))
    os.replace(tmp, path)
    return path


def load_episode(path: str) -> Episode:
    with np.load(path) as f:
        episode_return = float(f["episode_return"]) if "episode_return" in f else float("nan")
        return Episode(f["observations"], f["rewards"], f["actions"], f["policy"], int(f["seed"]), episode_return)


def read_metadata(folder: str) -> dict[str, Any]:
    """The folder's dataset.json; a clear error if the folder is not a dataset."""
    path = os.path.join(folder, "dataset.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{folder} is not a dataset: no dataset.json (make one with `tdm-train collect`)")
    with open(path) as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise TrainingError(f"{path}: not a {FORMAT} v{VERSION} file (format={meta.get('format')!r}, "
                            f"version={meta.get('version')!r})")
    return meta


def existing_episodes(folder: str) -> list[int]:
    """Indices of the complete episode files in `folder`, sorted."""
    names = glob.glob(os.path.join(folder, "episode_*.npz"))
    return sorted(int(os.path.basename(p)[8:14]) for p in names if ".tmp" not in p)


def action_repeat(meta: dict[str, Any]) -> int:
    """Control steps per dataset step (1 for datasets made before the setting existed)."""
    return int(meta.get("collect", {}).get("action_repeat", 1))


def load_dataset(folder: str) -> tuple[dict[str, Any], list[Episode]]:
    """Metadata and every episode, in index order."""
    meta = read_metadata(folder)
    episodes = [load_episode(episode_path(folder, i)) for i in existing_episodes(folder)]
    if not episodes:
        raise TrainingError(f"dataset {folder} has no episodes yet")
    return meta, episodes


def dataset_folders(data_dirs: str | Sequence[str]) -> list[str]:
    """A dataset folder, or several, as a list."""
    return [data_dirs] if isinstance(data_dirs, str) else list(data_dirs)


GENERALIST = "generalist"
"""The task name of data pooled across tasks, and of the checkpoints trained on it."""


def generalist_task(tasks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The task description of data pooled across `tasks` (their `Task.describe()`s), each listed once."""
    environments: list[dict[str, Any]] = []
    for t in tasks:
        if t not in environments:
            environments.append(t)
    return {"task": GENERALIST, "environments": environments}


def is_generalist(task: dict[str, Any]) -> bool:
    """Whether a dataset's or checkpoint's task description is pooled across tasks."""
    return "environments" in task


def load_datasets(data_dirs: str | Sequence[str],
                  across_tasks: bool = False) -> tuple[dict[str, Any], list[Episode]]:
    """One folder's metadata and episodes, or several folders' episodes in folder order.

    A specialist trains on one task at one dataset step, so every folder must describe
    the same task and action repeat (their data policies may differ: that is the
    point of adding a folder). The metadata returned is the first folder's.

    With `across_tasks` (a generalist) the folders may hold different tasks; their
    action repeat must still agree (one model step). When they do differ, the metadata
    returned is the first folder's with `task` the pooled description
    (`generalist_task`) and `folders` every folder's own metadata, in order.
    """
    folders = dataset_folders(data_dirs)
    if not folders:
        raise TrainingError("no dataset folder given")
    meta, episodes = load_dataset(folders[0])
    metas = [meta]
    for source, folder in enumerate(folders[1:], start=1):
        other, more = load_dataset(folder)
        metas.append(other)
        if other["task"] != meta["task"] and not across_tasks:
            raise TrainingError(f"{folder} holds {other['task'].get('task')!r} data with another task description "
                                f"than {folders[0]} ({meta['task'].get('task')!r}); train on one task's folders "
                                f"only, or pretrain a generalist (a pipeline with `tasks:`)")
        if action_repeat(other) != action_repeat(meta):
            raise TrainingError(f"{folder} holds one action per {action_repeat(other)} control steps, {folders[0]} "
                                f"per {action_repeat(meta)}; a model trains on one dataset step, so collect the "
                                f"folders with the same collect.action_repeat")
        for episode in more:
            episode.source = source
        episodes += more
    if any(m["task"] != meta["task"] for m in metas):
        meta = {**meta, "task": generalist_task([m["task"] for m in metas]), "folders": metas}
    return meta, episodes


def subset_dataset(source: str, out: str, episodes: int, draw: int) -> list[int]:
    """Writes `episodes` episodes of dataset `source`, drawn without replacement with seed `draw`, as a
    new dataset `out` (renumbered from 0, in source order); returns the source indices taken.

    For few-shot fine-tuning: M episodes of a target task, in independent draws. The folder's
    dataset.json is the source's with `subset` added (source folder, draw, indices), so `fit` and
    `stats` read it as any dataset. Writing the same subset again does nothing; a folder holding
    another subset (or other data) is refused.
    """
    meta = read_metadata(source)
    have = existing_episodes(source)
    if not 1 <= episodes <= len(have):
        raise TrainingError(f"{source} holds {len(have)} episodes; a subset needs 1 to {len(have)}, not {episodes}")
    rng = np.random.default_rng([draw, episodes])
    taken = sorted(int(i) for i in rng.choice(have, size=episodes, replace=False))
    subset = {"source": os.path.abspath(source), "draw": draw, "indices": taken}
    if os.path.exists(os.path.join(out, "dataset.json")):
        if read_metadata(out).get("subset") != subset:
            raise TrainingError(f"{out} holds other data than this subset ({episodes} episodes of {source}, draw "
                                f"{draw}); write it into a new folder")
        if existing_episodes(out) == list(range(episodes)):
            return taken
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "dataset.json"), {**meta, "subset": subset})
    for new, old in enumerate(taken):
        save_episode(out, new, load_episode(episode_path(source, old)))
    return taken


def dataset_hash(episodes: list[Episode], meta: dict[str, Any]) -> str:
    """sha256 over the task description and every episode's arrays, in order: names the training data."""
    h = hashlib.sha256(json.dumps(meta["task"], sort_keys=True).encode())
    for e in episodes:
        for array in (e.observations, e.rewards, e.actions, e.policy):
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


@dataclasses.dataclass
class TokenizedEpisode:
    """An episode as one token stream with, per token, its role, place in the step and loss weight."""

    tokens: np.ndarray  # (L,) int64
    local: np.ndarray  # (L,) int64 local position (Tokenizer.local: the place in the step, by role)
    weight: np.ndarray  # (L,) float32 loss weight of predicting this token (0: not a target)
    role: np.ndarray  # (L,) int64 Role of each token


def falling_steps(rewards: np.ndarray, lead_steps: int, success_reward: float = 0.9,
                  lost_reward: float = 0.5) -> np.ndarray:
    """(T + 1,) bool: the steps on the way from a success to a loss at most `lead_steps` later.

    `rewards` (T + 1,) are those received on arriving at each observation. For every step
    t with reward >= `success_reward` (the walker up, the pole balanced) whose reward drops
    below `lost_reward` within `lead_steps` steps, the steps after t up to that first drop
    are marked: the observations a model must predict to see a fall coming.
    """
    marked = np.zeros(len(rewards), dtype=bool)
    lost = rewards < lost_reward
    for t in np.flatnonzero(rewards >= success_reward):
        ahead = np.flatnonzero(lost[t + 1:t + 1 + lead_steps])
        if ahead.size:
            marked[t + 1:t + 2 + ahead[0]] = True
    return marked


def tokenize_episode(tokenizer: Tokenizer, episode: Episode, action_weight_by_policy: dict[int, float],
                     dynamics_weight: float | np.ndarray = 1.0) -> TokenizedEpisode:
    """Lays out `[o_t, r_t, sep, a_t]` for every step, then the final `[o_T, r_T]`.

    Observation and reward tokens are dynamics targets (`dynamics_weight`: one
    value, or one per step (T + 1,) for the tokens of o_t and r_t); action tokens
    are behaviour-cloning targets weighted by the policy that chose them (e.g. 0
    for Brownian noise, which is not worth imitating). Separators are never
    targets: they are always where the layout puts them.
    """
    t = len(episode)
    steps = tokenizer.tokenize_steps(episode.observations[None, :t], episode.rewards[None, :t],
                                     episode.actions[None])[0]  # (T * S,)
    tail = np.concatenate([tokenizer.encode(episode.observations[t]),
                           tokenizer.encode(episode.rewards[t:t + 1])])  # (n + 1,)
    tokens = np.concatenate([steps, tail])
    s = tokenizer.step_tokens
    local = tokenizer.local_positions(len(tokens))
    roles = tokenizer.roles()[np.arange(len(tokens)) % s]
    weight = np.zeros(len(tokens), dtype=np.float32)
    is_dynamics = (roles == Role.OBSERVATION) | (roles == Role.REWARD)
    step_of_token = np.arange(len(tokens)) // s  # the tail's tokens fall in step T
    weight[is_dynamics] = np.broadcast_to(np.asarray(dynamics_weight, dtype=np.float32), (t + 1,))[
        step_of_token[is_dynamics]]
    action_w = np.array([action_weight_by_policy.get(int(p), 0.0) for p in episode.policy], dtype=np.float32)
    per_step = np.repeat(action_w, s)  # (T * S,)
    is_action = roles[: t * s] == Role.ACTION
    weight[: t * s][is_action] = per_step[is_action]
    return TokenizedEpisode(tokens.astype(np.int64), local.astype(np.int64), weight, roles.astype(np.int64))


class WindowSampler:
    """Draws training windows of `context + 1` tokens from tokenized episodes.

    A window may start at any token, not only at a step boundary: at run time
    the model's sliding window starts anywhere too. Batches are a pure function
    of (seed, step, rank), so a resumed run sees the same data as an
    uninterrupted one.
    """

    def __init__(self, episodes: list[TokenizedEpisode], context: int, seed: int,
                 weights: Sequence[float] | None = None) -> None:
        """`weights` (one per episode) scale each episode's share of windows; None: all 1."""
        keep = [i for i, e in enumerate(episodes) if len(e.tokens) > context + 1]
        if not keep:
            raise TrainingError(f"no episode is longer than the context window of {context} tokens")
        self.episodes = [episodes[i] for i in keep]
        self.context = context
        self.seed = seed
        starts = np.array([len(e.tokens) - context - 1 for e in self.episodes], dtype=np.int64)
        scale = np.ones(len(keep)) if weights is None else np.asarray(weights, dtype=np.float64)[keep]
        self._probabilities = starts * scale / (starts * scale).sum()
        self._starts = starts

    def batch(self, size: int, step: int, rank: int = 0) -> tuple[np.ndarray, ...]:
        """tokens (B, C), local (B, C), targets (B, C), weights (B, C) and the Role of each target (B, C)
        for optimiser step `step`."""
        rng = np.random.default_rng([self.seed, rank, step])
        which = rng.choice(len(self.episodes), size=size, p=self._probabilities)
        offsets = (rng.random(size) * (self._starts[which] + 1)).astype(np.int64)
        return self._windows(list(zip(which, offsets)))

    def all_windows(self, stride: int) -> tuple[np.ndarray, ...]:
        """Every window at the given stride, for a fixed validation set (arrays as `batch`)."""
        return self._windows([(e, o) for e, ep in enumerate(self.episodes)
                              for o in range(0, len(ep.tokens) - self.context - 1, stride)])

    def _windows(self, rows: list[tuple[int, int]]) -> tuple[np.ndarray, ...]:
        """The windows of (episode, first token) `rows`: tokens, local, targets, weights, target roles."""
        c = self.context
        tokens, local, targets, roles = (np.empty((len(rows), c), dtype=np.int64) for _ in range(4))  # (B, C)
        weights = np.empty((len(rows), c), dtype=np.float32)
        for i, (e, o) in enumerate(rows):
            ep = self.episodes[e]
            tokens[i], local[i] = ep.tokens[o:o + c], ep.local[o:o + c]
            targets[i], weights[i], roles[i] = ep.tokens[o + 1:o + c + 1], ep.weight[o + 1:o + c + 1], \
                ep.role[o + 1:o + c + 1]
        return tokens, local, targets, weights, roles


def lost_and_recovered(rewards: np.ndarray, success_reward: float, lost_reward: float) -> tuple[bool, bool]:
    """Whether an episode's rewards (T,) drop below `lost_reward` after a success
    (reward >= `success_reward`), and whether a success follows such a drop."""
    success = np.flatnonzero(rewards >= success_reward)
    if not success.size:
        return False, False
    lost = np.flatnonzero(rewards[success[0]:] < lost_reward)
    if not lost.size:
        return False, False
    return True, bool((rewards[success[0] + lost[0]:] >= success_reward).any())


def summarize_dataset(folder: str, success_reward: float = 0.9, lost_reward: float = 0.5) -> dict[str, Any]:
    """What a dataset holds, to check the collection policy reached the states planning needs.

    Episodes are grouped by the share of their steps the MPC planner chose (1.0: planner
    only, 0.0: Brownian only); episodes imported from bags form the group `logged`.
    `success_share` is the share of dataset steps whose reward (each in [0, 1]) is at least
    `success_reward`: for walker stand, torso tall and upright.
    `lost_episodes` counts episodes whose reward drops below `lost_reward` after a success
    (the walker falls, the pole drops); `recovered_episodes` those of them that succeed again:
    the data a model needs to plan a recovery.
    """
    meta, episodes = load_dataset(folder)
    returns = np.array([e.episode_return for e in episodes])
    logged = np.array([bool(np.all(e.policy == 3)) for e in episodes])  # imported from bags (POLICIES)
    mpc = np.array([float(np.mean(e.policy != 0)) for e in episodes])  # planner-chosen share
    rewards = np.concatenate([e.rewards[1:] for e in episodes])
    outcomes = [lost_and_recovered(e.rewards[1:], success_reward, lost_reward) for e in episodes]
    groups = []
    for name, members in (("planner only", (mpc == 1.0) & ~logged), ("mixed", (mpc > 0.0) & (mpc < 1.0)),
                          ("Brownian only", mpc == 0.0), ("logged", logged)):
        if members.any():
            groups.append({"policy": name, "count": int(members.sum()),
                           "return_mean": float(returns[members].mean())})
    return {"folder": folder, "task": meta["task"]["task"], "episodes": len(episodes),
            "dataset_steps": int(sum(len(e) for e in episodes)), "action_repeat": action_repeat(meta),
            "return_mean": float(returns.mean()), "return_median": float(np.median(returns)),
            "success_reward": success_reward, "success_share": float(np.mean(rewards >= success_reward)),
            "lost_reward": lost_reward, "lost_episodes": sum(lost for lost, _ in outcomes),
            "recovered_episodes": sum(recovered for _, recovered in outcomes),
            "by_policy": groups}
