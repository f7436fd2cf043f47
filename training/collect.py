"""Collects training episodes from a dm_control task with a documented data policy.

The paper trained on expert data and notes that random-shooting MPC then
queries the model far from it. So episodes here mix two behaviours, segment by
segment (tdm_control.exploration, which the planner node's `exploration` shares):

* `mpc`: the ground-truth MuJoCo model driving a warm-started random-shooting
  planner (near-expert), its actions perturbed by Gaussian noise;
  with `collect.model` set to an exported model, that model drives the planner
  instead (`model_mpc`): on-policy data of the states its own planner reaches,
  where its errors cost return. The simulator still labels every transition;
  these actions train the dynamics only, never the behaviour-cloning policy;
* `brownian`: a fresh Brownian walk of the kind the planner samples (drift 0,
  variance 2 over the segment, first action uniform in the box).

An episode draws one *mix* (its share of MPC segments and its action noise),
then each segment picks its behaviour. MPC segments bring the robot to the
states a good controller visits; Brownian segments from there cover what the
planner will ask the model about.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from tdm_control.config import check
from tdm_control.dynamics import make_dynamics, model_digest
from tdm_control.exploration import DEFAULT_MIXES, MPC, ExplorationConfig, Explorer
from tdm_control.files import write_json
from tdm_control.history import History
from tdm_control.planning import ObservationReward, make_planner, planner_config
from tdm_control.tasks import make_task
from tdm_control.tasks.simulator import Simulator
from training.dataset import FORMAT, POLICIES, VERSION, Episode, existing_episodes, read_metadata, save_episode
from training.errors import TrainingError


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    task: str = "cartpole_swingup"
    """Registered task name."""
    episodes: int = 120
    """Episodes the dataset should hold; collection appends until it does."""
    steps: int = 1000
    """Control steps per episode (at most the task's episode length)."""
    action_repeat: int = 1
    """Control steps each action is held; episodes are recorded at this coarser rate (one
    dataset step per held action) and models trained on them plan at it."""
    segment_steps: int = 50
    """Dataset steps (held actions) per behaviour segment (tdm_control.exploration)."""
    noise_variance: float = 2.0
    """Variance of Brownian segments over `segment_steps`."""
    mixes: tuple[Any, ...] = DEFAULT_MIXES
    """Episode mixes: dicts with weight, mpc_share, action_noise (tdm_control.exploration.PolicyMix)."""
    planner: str = "warm_start"
    """Planner driving the MPC segments."""
    model: str = "mujoco"
    """Dynamics it plans with: 'mujoco' (ground truth, near-expert data) or an exported .onnx
    model (on-policy data for that model; `proposal` needs one)."""
    planner_params: dict = dataclasses.field(default_factory=lambda: {"samples": 64, "horizon": 50})
    """Its config; cheaper than evaluation settings, since noise is added anyway."""
    workers: int = 2
    """Parallel processes, one MuJoCo thread each."""
    seed: int = 0
    """Episode i is drawn from generator (seed, i): reproducible and order-independent."""

    def __post_init__(self) -> None:
        check(self.episodes >= 1, "episodes", f"must be >= 1, got {self.episodes}")
        check(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        check(self.action_repeat >= 1, "action_repeat", f"must be >= 1, got {self.action_repeat}")
        check(self.steps % self.action_repeat == 0, "steps",
              f"{self.steps} control steps are not a whole number of actions held {self.action_repeat} steps")
        check(self.workers >= 1, "workers", f"must be >= 1, got {self.workers}")
        self.exploration  # noqa: B018 (checks segment_steps, noise_variance and mixes)
        planner_config(self.planner, self.planner_params)
        check(self.model == "mujoco" or self.model.endswith(".onnx"), "model",
              f"must be 'mujoco' or a path to an exported .onnx model, got {self.model!r}")

    @property
    def exploration(self) -> ExplorationConfig:
        """The data policy (MPC and Brownian segments) this collection follows."""
        return ExplorationConfig(self.segment_steps, self.noise_variance, tuple(self.mixes))


_TASKS: dict[str, Any] = {}


Policy = Callable[[int, np.ndarray, float], tuple[np.ndarray, int]]
"""(dataset step t, observation o_t (n,), reward r_t received on arriving at it) -> (action (m,), POLICIES label)."""


def play_episode(task, simulator: Simulator, policy: Policy, steps: int, action_repeat: int, seed: int) -> Episode:
    """One episode from a fresh initial state of `simulator`, as the dataset records it.

    Each dataset step observes o_t, asks `policy` for an action (clipped to [-1, 1]), holds its
    torque for `action_repeat` control steps and records the reward of the last of them as r_{t+1}.
    Collection and the bag import's reference (test_bag_import) both run episodes through here.
    """
    simulator.reset()
    n, m = task.observation_size, task.action_size
    observations = np.empty((steps + 1, n))
    rewards = np.zeros(steps + 1)
    actions = np.empty((steps, m))
    labels = np.empty(steps, dtype=np.int8)
    for t in range(steps):
        positions, velocities, _ = simulator.joint_state()
        observations[t] = task.observation(positions, velocities)
        action, labels[t] = policy(t, observations[t], rewards[t])
        actions[t] = np.clip(action, -1.0, 1.0)
        torque = task.action_to_torque(actions[t])
        for _ in range(action_repeat):
            rewards[t + 1] = simulator.step(torque)  # the reward on arrival: the last control step's
    positions, velocities, _ = simulator.joint_state()
    observations[steps] = task.observation(positions, velocities)
    return Episode(observations, rewards, actions, labels, seed=seed, episode_return=simulator.episode_return)


def collect_episode(config: CollectConfig, index: int) -> Episode:
    """Runs episode `index` of the dataset; a pure function of (config, index)."""
    task = _TASKS.get(config.task) or _TASKS.setdefault(config.task, make_task(config.task))
    if config.steps > task.episode_steps:
        raise TrainingError(f"collect.steps {config.steps} exceeds the task's episode of {task.episode_steps} steps")
    rng = np.random.default_rng([config.seed, index])
    steps = config.steps // config.action_repeat  # dataset steps, one per held action
    explorer = Explorer(config.exploration, rng, task.action_size, steps)  # draws the episode's mix first
    dynamics = open_dynamics(config, task)
    planner = make_planner(config.planner, dynamics, ObservationReward(task.reward), task.action_size,
                           np.random.default_rng([config.seed, index, 1]), config.planner_params)
    simulator = Simulator(task, seed=int(rng.integers(2**31 - 1)))
    planner_label = 1 if config.model == "mujoco" else 2  # POLICIES
    history = History(dynamics.history_steps)  # what a sequence model conditions on

    def plan_from(observation: np.ndarray, reward: float) -> Callable[[], np.ndarray]:
        def plan() -> np.ndarray:
            history.current_reward = reward
            return planner.plan(observation, history)
        return plan

    def policy(t: int, observation: np.ndarray, reward: float) -> tuple[np.ndarray, int]:
        action = explorer.act(t, plan_from(observation, reward))
        history.append(observation, reward, action)  # the action executed, noise and all
        return action, planner_label if explorer.behaviour == MPC else 0

    episode = play_episode(task, simulator, policy, steps, config.action_repeat, seed=index)
    dynamics.close()
    return episode


def open_dynamics(config: CollectConfig, task):
    """The collection planner's model, on one thread per worker; a ConfigError for a model made
    for another task or action repeat, or a missing file."""
    kwargs = {"nthread": 1} if config.model == "mujoco" else {"threads": 1, "device": "cpu"}
    return make_dynamics(config.model, task, action_repeat=config.action_repeat, **kwargs)


def _work(args: tuple[CollectConfig, str, int]) -> tuple[int, float]:
    config, folder, index = args
    episode = collect_episode(config, index)
    save_episode(folder, index, episode)
    return index, episode.episode_return


def collect(config: CollectConfig, folder: str, show_progress: bool = True) -> list[int]:
    """Fills `folder` up to `config.episodes` episodes; returns the indices collected now.

    Resumable and appendable: episodes already on disk are kept, missing indices
    are collected. A folder made for another task or data policy, or with another
    version of the file `config.model` names, is refused.
    """
    task = make_task(config.task)
    open_dynamics(config, task).close()  # refuse a wrong model before touching the folder
    meta = {"format": FORMAT, "version": VERSION, "task": task.describe(),
            "collect": dataclasses.asdict(config), "policies": {str(k): v for k, v in POLICIES.items()},
            "model_sha256": model_digest(config.model)}
    if os.path.exists(os.path.join(folder, "dataset.json")):
        old = read_metadata(folder)
        old_policy = {k: v for k, v in old["collect"].items() if k not in ("episodes", "workers")}
        new_policy = {k: v for k, v in meta["collect"].items() if k not in ("episodes", "workers")}
        old_policy.setdefault("model", "mujoco")  # folders collected before the key existed
        if old["task"] != meta["task"] or not json_equal(old_policy, new_policy):
            raise TrainingError(f"{folder} holds data of another task or data policy; collect into a new folder")
        if old.get("model_sha256") != meta["model_sha256"]:
            raise TrainingError(f"{folder} holds on-policy data of another version of {config.model} (its file "
                                f"changed since); collect into a new folder")
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, "dataset.json"), meta)
    have = set(existing_episodes(folder))
    todo = [i for i in range(config.episodes) if i not in have]
    if not todo:
        return []
    returns = []
    with tqdm(total=len(todo), disable=not show_progress, unit="episode", desc=f"collect {config.task}") as bar:
        jobs = [(config, folder, i) for i in todo]
        if config.workers == 1:
            results = map(_work, jobs)
            pool = None
        else:
            pool = multiprocessing.get_context("spawn").Pool(config.workers)
            results = pool.imap_unordered(_work, jobs)
        try:
            for _, episode_return in results:
                returns.append(episode_return)
                bar.update(1)
                bar.set_postfix(mean_return=f"{np.mean(returns):.0f}")
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    return todo


def json_equal(a: Any, b: Any) -> bool:
    """Equality after a JSON round trip (tuples and lists compare equal)."""
    return json.loads(json.dumps(a, sort_keys=True)) == json.loads(json.dumps(b, sort_keys=True))
