"""Trains the TDM on a collected dataset: one loop, resumable, optionally data-parallel.

    tdm-train fit --config config/training/cartpole_swingup.yaml
    torchrun --nproc_per_node 2 -m training.cli fit --config ...   # DDP (gloo on CPU, nccl on GPU)

AdamW with linear warm-up and cosine decay, gradient clipping, a fixed
validation set, TensorBoard logs, and atomic checkpoints that store the model
config and tokenizer settings. An interrupted run started again with the same
config continues from its last checkpoint and ends where an uninterrupted run
would have ended (batches are a pure function of seed, step and rank).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from tdm_control.config import check
from tdm_control.tokenizer import Role, Tokenizer
from training.dataset import (
    Episode,
    WindowSampler,
    action_repeat,
    dataset_folders,
    dataset_hash,
    falling_steps,
    is_generalist,
    load_datasets,
    tokenize_episode,
)
from training.errors import TrainingError
from training.model import TDM, TDMConfig

CHECKPOINT = "checkpoint.pt"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    """Sequences per optimiser step (per process under DDP)."""
    sequence_tokens: int = 128
    """Tokens per training sequence; longer than the attention window, so the model learns
    the sliding window's steady state as the run-time cache sees it."""
    max_steps: int = 6000
    """Optimiser steps in all."""
    learning_rate: float = 1e-3
    """Peak learning rate, reached after warm-up."""
    min_learning_rate: float = 1e-4
    """Floor of the cosine decay."""
    warmup_steps: int = 200
    """Linear warm-up from 0."""
    weight_decay: float = 0.1
    """AdamW decay on matrices (not on biases, norms or embeddings' positions)."""
    grad_clip: float = 1.0
    """Global gradient-norm clip."""
    action_weight: float = 1.0
    """Loss weight of action tokens chosen by the MPC policy (behaviour cloning)."""
    brownian_action_weight: float = 0.0
    """Loss weight of action tokens drawn as Brownian noise (not worth imitating)."""
    fall_weight: float = 1.0
    """Loss weight of the observation and reward tokens of the steps on the way from success
    (reward >= 0.9) to a loss (reward < 0.5) at most `fall_lead_steps` later (dataset.falling_steps):
    a fall the planner must see coming is a few percent of the data. 1 weighs them as any other."""
    fall_lead_steps: int = 15
    """How far ahead of a fall (dataset steps) its steps count as falling."""
    folder_weights: tuple[float, ...] | None = None
    """Share of training windows drawn from each dataset folder (data_dir, then extra_data_dirs),
    normalised (see folder_shares); None draws in proportion to each folder's size. Lets a small
    folder of new data (on-policy, a rare phase) count without being drowned by a large one."""
    validation_fraction: float = 0.05
    """Share of episodes held out for validation."""
    validation_windows: int = 512
    """Held-out windows evaluated each time."""
    eval_every: int = 250
    """Steps between validation passes."""
    checkpoint_every: int = 500
    """Steps between checkpoints (one more at the end)."""
    keep_every: int = 0
    """Also keep the checkpoint of every k-th step as checkpoint_<step>.pt, for curves of return against
    training (fine-tuning) steps; a multiple of checkpoint_every. 0: only the latest."""
    threads: int = 0
    """torch CPU threads per process; 0 leaves torch's default."""
    init_from: str | None = None
    """A checkpoint.pt of another run whose weights start this one (fine-tuning): same model
    config and task; the optimiser and schedule start afresh. Unused when resuming."""
    seed: int = 0
    """Seeds initial weights and the batch stream."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "sequence_tokens", "max_steps", "eval_every", "checkpoint_every",
                     "validation_windows"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(0 < self.validation_fraction < 1, "validation_fraction",
              f"must be in (0, 1), got {self.validation_fraction}")
        check(self.min_learning_rate <= self.learning_rate, "min_learning_rate", "must not exceed learning_rate")
        check(self.fall_weight >= 0, "fall_weight", f"must be >= 0, got {self.fall_weight}")
        check(self.fall_lead_steps >= 1, "fall_lead_steps", f"must be >= 1, got {self.fall_lead_steps}")
        check(self.keep_every >= 0 and self.keep_every % self.checkpoint_every == 0, "keep_every",
              f"must be 0 or a multiple of checkpoint_every ({self.checkpoint_every}), got {self.keep_every}")
        if self.folder_weights is not None:
            check(len(self.folder_weights) > 0 and all(w >= 0 for w in self.folder_weights)
                  and sum(self.folder_weights) > 0, "folder_weights",
                  f"must be shares >= 0, one per dataset folder, not all 0; got {list(self.folder_weights)}")


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to the floor at `max_steps`."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_learning_rate + cosine * (config.learning_rate - config.min_learning_rate)


def make_optimizer(model: TDM, config: TrainConfig) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "local_embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "local_embedding" in n]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=config.learning_rate, betas=(0.9, 0.95))


def weighted_losses(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                    roles: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropy per role and the weighted total.

    Args:
      logits (B, T, V), targets (B, T), weights (B, T) loss weight per target,
      roles (B, T) Role of each target.
    """
    ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(weights)
    out = {"loss": (ce * weights).sum() / weights.sum().clamp_min(1e-8)}
    for role in (Role.OBSERVATION, Role.REWARD, Role.ACTION):
        mask = (roles == role) & (weights > 0)
        out[role.name.lower()] = (ce * mask).sum() / mask.sum().clamp_min(1)
    return out


@dataclasses.dataclass
class Prepared:
    """Everything the loop needs from the dataset."""

    tokenizer: Tokenizer
    train: WindowSampler
    validation: tuple[np.ndarray, ...]
    meta: dict[str, Any]
    data_hash: str
    episodes: int


def dynamics_weights(episode: Episode, config: TrainConfig) -> float | np.ndarray:
    """Loss weight of each step's observation and reward tokens (T + 1,), or 1 for all."""
    if config.fall_weight == 1.0:
        return 1.0
    return np.where(falling_steps(episode.rewards, config.fall_lead_steps), config.fall_weight, 1.0)


def folder_tokenizers(meta: dict[str, Any], folders: int, model_config: TDMConfig) -> list[Tokenizer]:
    """One tokenizer per dataset folder (`load_datasets` metadata): its task's layout in the model's slots."""
    tokenizers = []
    for folder_meta in meta.get("folders") or [meta] * folders:
        task = folder_meta["task"]
        try:
            tokenizer = Tokenizer(task["observation_size"], task["action_size"],
                                  observation_slots=model_config.observation_slots,
                                  action_slots=model_config.action_slots)
        except ValueError as e:
            raise TrainingError(f"task {task['task']!r}: {e}; raise model.observation_slots/action_slots") from None
        if tokenizer.local_size != model_config.step_tokens or tokenizer.vocab_size != model_config.vocab_size:
            raise TrainingError(f"model config expects step_tokens={model_config.step_tokens}, vocab_size="
                                f"{model_config.vocab_size}; the dataset's task {task['task']!r} needs "
                                f"{tokenizer.local_size}, {tokenizer.vocab_size}")
        tokenizers.append(tokenizer)
    return tokenizers


def prepare_data(data_dirs: str | Sequence[str], config: TrainConfig, model_config: TDMConfig,
                 across_tasks: bool = False) -> Prepared:
    """Tokenized training windows and fixed validation windows of the folders.

    `across_tasks` (a generalist's pretraining) lets the folders hold different tasks, each
    tokenized in its own layout of the model's slots, and holds out every k-th episode of each
    folder (at least one of each folder of three or more), so every task with data to spare is validated."""
    folders = dataset_folders(data_dirs)
    meta, episodes = load_datasets(folders, across_tasks=across_tasks)
    tokenizers = folder_tokenizers(meta, len(folders), model_config)
    tokenizer = tokenizers[0]
    if is_generalist(meta["task"]):  # the checkpoint records the whole table's layout, not one task's
        n, m = tokenizer.slots
        tokenizer = dataclasses.replace(tokenizer, observation_size=n, action_size=m)
    action_weights = {0: config.brownian_action_weight, 1: config.action_weight}
    tokenized = [tokenize_episode(tokenizers[e.source], e, action_weights, dynamics_weights(e, config))
                 for e in episodes]
    every = max(2, round(1 / config.validation_fraction))
    held_out = validation_episodes([e.source for e in episodes], every, per_folder=across_tasks)
    val = [t for t, h in zip(tokenized, held_out) if h]
    train_ids = [i for i, h in enumerate(held_out) if not h] or list(range(len(tokenized)))
    val = val or tokenized[:1]
    c = config.sequence_tokens
    windows = WindowSampler(val, c, seed=config.seed).all_windows(stride=max(1, c // 2))
    pick = np.random.default_rng(config.seed).permutation(len(windows[0]))[:config.validation_windows]
    train = [tokenized[i] for i in train_ids]
    weights = folder_shares([episodes[i].source for i in train_ids], [len(t.tokens) for t in train],
                            config.folder_weights, len(folders))
    return Prepared(tokenizer, WindowSampler(train, c, seed=config.seed, weights=weights),
                    tuple(w[pick] for w in windows), meta, dataset_hash(episodes, meta), len(episodes))


def validation_episodes(sources: Sequence[int], every: int, per_folder: bool) -> list[bool]:
    """Which episodes (by their folder index, in order) are held out: every `every`-th one, counted
    over all folders, or within each folder (`per_folder`), where a folder of 3 or more episodes
    that would give none gives its last (a folder of 1 or 2, such as one robot variant's, trains on all)."""
    if not per_folder:
        return [i % every == every - 1 for i in range(len(sources))]
    counts: dict[int, int] = {}
    held = []
    for source in sources:
        counts[source] = counts.get(source, 0) + 1
        held.append(counts[source] % every == 0)
    for source, count in counts.items():
        if 3 <= count < every:
            held[max(i for i, s in enumerate(sources) if s == source)] = True
    return held


def folder_shares(sources: list[int], lengths: list[int], shares: Sequence[float] | None,
                  folders: int) -> np.ndarray | None:
    """Per-episode window weights that give folder f the share `shares[f]` of all windows.

    Weights are share / tokens of the folder, so the share is exact for episodes much longer
    than a training sequence; a window starts only where a whole sequence fits, so a folder
    of short episodes gets a little less (walker_stand_v6.yaml's 100-step on-policy episodes:
    about 92% of its share). Kept so, since shipped models were trained with it.

    Args:
      sources: (E,) folder index of each training episode; lengths: (E,) its tokens.
      shares: one per folder (normalised here), or None: in proportion to size (no weights).
    """
    if shares is None:
        return None
    if len(shares) != folders:
        raise TrainingError(f"train.folder_weights has {len(shares)} shares for {folders} dataset folders "
                            f"(data_dir or a generalist's task folders, then extra_data_dirs); give one per folder")
    sources_arr, lengths_arr = np.asarray(sources), np.asarray(lengths, dtype=np.float64)
    size = np.bincount(sources_arr, weights=lengths_arr, minlength=folders)  # tokens per folder
    share = np.asarray(shares, dtype=np.float64) / sum(shares)
    return share[sources_arr] / size[sources_arr]


def snapshot_path(run_dir: str, step: int) -> str:
    """Where `train.keep_every` keeps the checkpoint of `step`."""
    return os.path.join(run_dir, f"checkpoint_{step:06d}.pt")


def save_checkpoint(path: str, payload: dict[str, Any]) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves half a checkpoint."""
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def read_tdm_checkpoint(path: str, task: dict[str, Any], asker: str, any_task: bool = False) -> dict[str, Any]:
    """Checkpoint `path`, checked to exist, to be a TDM's and to be of `task` (a dataset's task
    description); `asker` starts each error message (the config key or command that named it).
    `any_task`: a generalist checkpoint may be of other tasks (fine-tuning; its slots are checked
    with the model config)."""
    if not os.path.exists(path):
        raise TrainingError(f"{asker}: no checkpoint at {path}; train that run first or fix the path")
    ckpt = load_checkpoint(path)
    if "tokenizer" not in ckpt:
        raise TrainingError(f"{asker}: {path} is not a TDM checkpoint (a baseline's?); give a TDM run's {CHECKPOINT}")
    if ckpt["task"] != task and not (any_task and is_generalist(ckpt["task"])):
        raise TrainingError(f"{asker}: {path} was trained on task {ckpt['task'].get('task')!r}, "
                            f"this dataset is {task.get('task')!r}")
    return ckpt


def same_model_config(saved: dict[str, Any], config: TDMConfig) -> bool:
    """Whether a checkpoint's recorded model config is `config` (fields added since take their defaults)."""
    return dataclasses.asdict(TDMConfig(**saved)) == dataclasses.asdict(config)


def initial_weights(path: str, model_config: TDMConfig, task: dict[str, Any], repeat: int) -> dict[str, Any]:
    """The model weights of checkpoint `path`, checked to fit `model_config`, `task` (or, for a
    generalist's checkpoint, any task whose layout fits its slots: fine-tuning) and the data's
    action repeat `repeat` (control steps per model step)."""
    ckpt = read_tdm_checkpoint(path, task, "train.init_from", any_task=True)
    if ckpt.get("action_repeat", 1) != repeat:
        raise TrainingError(f"train.init_from: {path} was trained on one action per {ckpt.get('action_repeat', 1)} "
                            f"control steps, this data holds one per {repeat}; a model step must keep its length")
    if not same_model_config(ckpt["model_config"], model_config):
        saved = dataclasses.asdict(TDMConfig(**ckpt["model_config"]))
        diff = sorted(k for k, v in dataclasses.asdict(model_config).items() if saved.get(k) != v)
        raise TrainingError(f"train.init_from: {path} has another model config (differs in {', '.join(diff)}); "
                            f"fine-tuning needs the same architecture")
    return ckpt["model"]


def model_from_checkpoint(checkpoint: dict[str, Any]) -> TDM:
    model = TDM(TDMConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model"])
    return model.eval()


def checkpoint_losses(paths: Sequence[str], data_dirs: str | Sequence[str], config: TrainConfig,
                      model_config: TDMConfig, across_tasks: bool = False) -> list[dict[str, Any]]:
    """Validation losses of TDM checkpoints on one pipeline's held-out windows, nats per target token.

    Each run holds out every k-th episode of its own folders, so runs trained on different
    folders report losses on different windows; this scores any checkpoints of the task on the
    same windows. Returns one row per checkpoint: path, step, loss (the weighted total) and the
    loss by role (observation, reward, action; None for a role the windows hold no target of).
    """
    data = prepare_data(data_dirs, config, model_config, across_tasks)
    rows = []
    for path in paths:
        ckpt = read_tdm_checkpoint(path, data.meta["task"], "tdm-train loss")
        losses = evaluate_loss(model_from_checkpoint(ckpt), data.validation, torch.device("cpu"))
        rows.append({"checkpoint": path, "step": int(ckpt["step"]), **losses})
    return rows


def _distributed() -> tuple[int, int]:
    """(rank, world size), initialising torch.distributed when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def evaluate_loss(model: TDM, validation: tuple[np.ndarray, ...], device: torch.device,
                  batch: int = 128) -> dict[str, float | None]:
    """Validation losses, nats per target token: 'loss' (weighted total) and one per role, None for
    a role the windows hold no target of (e.g. actions of on-policy data)."""
    _, _, _, weights, target_roles = validation  # (W, C) each
    empty = [r.name.lower() for r in (Role.OBSERVATION, Role.REWARD, Role.ACTION)
             if not ((target_roles == r) & (weights > 0)).any()]
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    with torch.no_grad():
        for i in range(0, len(validation[0]), batch):
            tokens, local, targets, weights, roles = (torch.as_tensor(a[i:i + batch], device=device)
                                                      for a in validation)
            losses = weighted_losses(model(tokens, local), targets, weights, roles)
            n = len(tokens)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            count += n
    model.train()
    return {k: None if k in empty else v / count for k, v in sums.items()}


def train(data_dirs: str | Sequence[str], run_dir: str, model_config: TDMConfig, config: TrainConfig,
          show_progress: bool = True, stop_after: int | None = None, across_tasks: bool = False) -> dict[str, Any]:
    """Trains (or resumes) the run in `run_dir`; returns the final metrics.

    Args:
      data_dirs: a dataset folder made by `training.collect`, or several of one task
        and action repeat (their episodes are pooled); with `across_tasks` (a generalist's
        pretraining, see `prepare_data`) of several tasks.
      run_dir: checkpoint, TensorBoard logs and metrics go here.
      model_config, config: the model and the schedule.
      stop_after: stop (with a checkpoint) after this many steps of this call,
        as if interrupted; for tests and time-boxed sessions.
    """
    rank, world = _distributed()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if torch.cuda.is_available() \
        else torch.device("cpu")
    data = prepare_data(data_dirs, config, model_config, across_tasks)
    folders = dataset_folders(data_dirs)
    torch.manual_seed(config.seed)
    model = TDM(model_config).to(device)
    optimizer = make_optimizer(model, config)
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, CHECKPOINT)
    start = 0
    if os.path.exists(path):
        ckpt = load_checkpoint(path)
        if not same_model_config(ckpt["model_config"], model_config) or ckpt["dataset_hash"] != data.data_hash:
            raise TrainingError(f"{path} belongs to another model config or dataset; use a new run folder "
                                f"or delete it to start over")
        if {"init_from": None, "keep_every": 0, **ckpt["train_config"]} != dataclasses.asdict(config):  # older runs
            raise TrainingError(f"{path} was trained with another schedule; resume with the same train config")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = ckpt["step"]
    elif config.init_from:
        model.load_state_dict(initial_weights(config.init_from, model_config, data.meta["task"],
                                              action_repeat(data.meta)))
    ddp_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
    end = config.max_steps if stop_after is None else min(config.max_steps, start + stop_after)
    metrics: dict[str, Any] = {}
    started = time.time()
    model.train()

    def checkpoint(step: int) -> None:
        if rank != 0:
            return
        payload = {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "model_config": dataclasses.asdict(model_config), "train_config": dataclasses.asdict(config),
            "tokenizer": data.tokenizer.describe(), "task": data.meta["task"],
            "dataset_hash": data.data_hash, "dataset_dir": os.path.abspath(folders[0]),
            "dataset_dirs": [os.path.abspath(f) for f in folders],
            "action_repeat": action_repeat(data.meta),
            "dataset_episodes": data.episodes, "metrics": metrics, "world_size": world,
        }
        save_checkpoint(path, payload)
        if config.keep_every and step % config.keep_every == 0:
            save_checkpoint(snapshot_path(run_dir, step), payload)

    with tqdm(total=config.max_steps, initial=start, disable=not show_progress or rank != 0,
              unit="step", desc="train") as bar:
        for step in range(start, end):
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            tokens, local, targets, weights, roles = (torch.as_tensor(a, device=device)
                                                      for a in data.train.batch(config.batch_size, step, rank))
            losses = weighted_losses(ddp_model(tokens, local), targets, weights, roles)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if writer is not None:
                for k, v in losses.items():
                    writer.add_scalar(f"train/{k}", float(v.detach()), step)
                writer.add_scalar("train/lr", lr, step)
                writer.add_scalar("train/grad_norm", float(grad_norm), step)
            bar.update(1)
            train_loss = float(losses["loss"].detach())
            if step % 20 == 0:
                bar.set_postfix(loss=f"{train_loss:.3f}", lr=f"{lr:.1e}")
            done = step + 1
            if done % config.eval_every == 0 or done == config.max_steps:
                if rank == 0:
                    val = evaluate_loss(model, data.validation, device)
                    metrics = {"step": done, "train_loss": train_loss,
                               **{f"val_{k}": v for k, v in val.items()},
                               "seconds": time.time() - started}
                    for k, v in val.items():
                        if v is not None:
                            writer.add_scalar(f"val/{k}", v, done)
                    shown = {k: "-" if v is None else f"{v:.4f}" for k, v in val.items()}
                    bar.write(f"step {done}: train {train_loss:.4f}  val {shown['loss']} "
                              f"(obs {shown['observation']}, reward {shown['reward']}, action {shown['action']})")
            if done % config.checkpoint_every == 0 or done == end:
                checkpoint(done)
    if writer is not None:
        writer.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return {"step": end, "parameters": model.num_parameters(), **metrics}
