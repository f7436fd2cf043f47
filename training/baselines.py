"""Baseline dynamics models from the paper: MLPs predicting the change of the observation.

* `mlp_delta`: a plain MLP on normalised observation and action.
* `mlp_tokenized`: the paper's best baseline, "MLP with tokenized inputs and
  delta outputs": each input scalar is mu-law tokenized with the TDM's own
  tokenizer and embedded (plus an embedding of its index), the embeddings are
  concatenated and fed to the MLP.

Both are Markov one-step models, o_t, a_t -> o_{t+1} - o_t and r_{t+1}, trained
with mean squared error on normalised targets from the same dataset as the
TDM, and exported to ONNX with the same metadata scheme.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tdm_control.tokenizer import Tokenizer
from training.dataset import action_repeat, dataset_hash, load_datasets
from training.errors import TrainingError
from training.train import TrainConfig, learning_rate, save_checkpoint

KINDS = ("mlp_delta", "mlp_tokenized")
CHECKPOINT = "checkpoint.pt"


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    kind: str = "mlp_tokenized"
    """'mlp_delta' or 'mlp_tokenized'."""
    observation_size: int = 5
    """n (follows from the task)."""
    action_size: int = 1
    """m (follows from the task)."""
    hidden: int = 256
    """Width of each hidden layer."""
    layers: int = 3
    """Hidden layers."""
    embed_dim: int = 16
    """Embedding width per input token (mlp_tokenized only)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown baseline kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.hidden < 1 or self.layers < 1 or self.embed_dim < 1:
            raise ValueError("hidden, layers and embed_dim must be >= 1")


class TorchTokenizer(nn.Module):
    """The shared tokenizer's encode, as torch ops so that it exports into the graph."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        super().__init__()
        self.mu, self.bins = tokenizer.mu, tokenizer.bins
        self.log_scale = math.log1p(tokenizer.max_value * tokenizer.mu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sign(x) * torch.log1p(torch.abs(x) * self.mu) / self.log_scale
        y = torch.clamp(y, -1.0, 1.0)
        return torch.clamp(torch.floor((y + 1.0) / 2.0 * self.bins), 0, self.bins - 1).to(torch.int64)


class DeltaMLP(nn.Module):
    """o_t (B, n), a_t (B, m) -> o_{t+1} (B, n), r_{t+1} (B,)."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        n, m = config.observation_size, config.action_size
        tokenizer = Tokenizer(n, m)
        if config.kind == "mlp_tokenized":
            self.tokenize = TorchTokenizer(tokenizer)
            self.token_embedding = nn.Embedding(tokenizer.bins, config.embed_dim)
            self.index_embedding = nn.Parameter(torch.zeros(n + m, config.embed_dim))
            width = (n + m) * config.embed_dim
        else:
            width = n + m
        blocks: list[nn.Module] = []
        for _ in range(config.layers):
            blocks += [nn.Linear(width, config.hidden), nn.GELU()]
            width = config.hidden
        blocks.append(nn.Linear(width, n + 1))
        self.mlp = nn.Sequential(*blocks)
        # Normalisation statistics, set from the training data and saved with the weights.
        self.register_buffer("obs_mean", torch.zeros(n))
        self.register_buffer("obs_std", torch.ones(n))
        self.register_buffer("target_mean", torch.zeros(n + 1))
        self.register_buffer("target_std", torch.ones(n + 1))

    def normalised_output(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """(B, n + 1): normalised [delta o, r] predictions."""
        if self.config.kind == "mlp_tokenized":
            tokens = self.tokenize(torch.cat([obs, action], dim=-1))  # (B, n + m)
            x = (self.token_embedding(tokens) + self.index_embedding).flatten(1)  # (B, (n + m) * e)
        else:
            x = torch.cat([(obs - self.obs_mean) / self.obs_std, action], dim=-1)
        return self.mlp(x)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.normalised_output(obs, action) * self.target_std + self.target_mean
        return obs + out[:, :-1], out[:, -1]


def transitions(episodes) -> tuple[np.ndarray, ...]:
    """All (o_t, a_t, o_{t+1}, r_{t+1}) of the episodes, stacked: (S, n), (S, m), (S, n), (S,)."""
    obs = np.concatenate([e.observations[:-1] for e in episodes])
    actions = np.concatenate([e.actions for e in episodes])
    next_obs = np.concatenate([e.observations[1:] for e in episodes])
    rewards = np.concatenate([e.rewards[1:] for e in episodes])
    return obs, actions, next_obs, rewards


def train_baseline(data_dirs: str | Sequence[str], run_dir: str, config: MLPConfig, train_config: TrainConfig,
                   show_progress: bool = True) -> dict[str, Any]:
    """Fits a baseline with AdamW, warm-up and cosine decay; checkpoints to `run_dir` (resumable)."""
    meta, episodes = load_datasets(data_dirs)
    every = max(2, round(1 / train_config.validation_fraction))
    train_eps = [e for i, e in enumerate(episodes) if i % every != every - 1] or episodes
    val_eps = [e for i, e in enumerate(episodes) if i % every == every - 1] or episodes[:1]
    obs, actions, next_obs, rewards = (torch.as_tensor(a, dtype=torch.float32) for a in transitions(train_eps))
    val = [torch.as_tensor(a, dtype=torch.float32) for a in transitions(val_eps)]
    if train_config.threads:
        torch.set_num_threads(train_config.threads)
    torch.manual_seed(train_config.seed)
    model = DeltaMLP(config)
    targets = torch.cat([next_obs - obs, rewards[:, None]], dim=1)
    model.obs_mean.copy_(obs.mean(0))
    model.obs_std.copy_(obs.std(0).clamp_min(1e-6))
    model.target_mean.copy_(targets.mean(0))
    model.target_std.copy_(targets.std(0).clamp_min(1e-6))
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.learning_rate,
                                  weight_decay=train_config.weight_decay)
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, CHECKPOINT)
    data_hash = dataset_hash(episodes, meta)
    start = 0
    if os.path.exists(path):
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if ckpt["mlp_config"] != dataclasses.asdict(config) or ckpt["dataset_hash"] != data_hash \
                or ckpt["train_config"] != dataclasses.asdict(train_config):
            raise TrainingError(f"{path} belongs to another config or dataset; use a new run folder")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = ckpt["step"]

    def val_loss() -> float:
        with torch.no_grad():
            v_obs, v_act, v_next, v_rew = val
            v_targets = (torch.cat([v_next - v_obs, v_rew[:, None]], 1) - model.target_mean) / model.target_std
            return float(((model.normalised_output(v_obs, v_act) - v_targets) ** 2).mean())

    metrics: dict[str, Any] = {}
    started = time.time()
    norm_targets = (targets - model.target_mean) / model.target_std
    with tqdm(total=train_config.max_steps, initial=start, disable=not show_progress, unit="step",
              desc=f"train {config.kind}") as bar:
        for step in range(start, train_config.max_steps):
            lr = learning_rate(train_config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            rng = np.random.default_rng([train_config.seed, step])
            idx = torch.as_tensor(rng.integers(0, len(obs), train_config.batch_size))
            loss = ((model.normalised_output(obs[idx], actions[idx]) - norm_targets[idx]) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_config.grad_clip)
            optimizer.step()
            bar.update(1)
            done = step + 1
            if done % train_config.eval_every == 0 or done == train_config.max_steps:
                metrics = {"step": done, "train_loss": float(loss.detach()), "val_loss": val_loss(),
                           "seconds": time.time() - started}
                bar.write(f"step {done}: train {metrics['train_loss']:.4f}  val {metrics['val_loss']:.4f}")
            if done % train_config.checkpoint_every == 0 or done == train_config.max_steps:
                save_checkpoint(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                       "step": done, "mlp_config": dataclasses.asdict(config),
                                       "train_config": dataclasses.asdict(train_config), "task": meta["task"],
                                       "action_repeat": action_repeat(meta),
                                       "dataset_hash": data_hash, "metrics": metrics})
    return {"parameters": sum(p.numel() for p in model.parameters()), **metrics}


def export_baseline(checkpoint_path: str, out_path: str, max_delta: float = 1e-4) -> dict[str, Any]:
    """Exports a baseline to ONNX (obs, action -> next_obs, reward) after a parity check."""
    import onnxruntime as ort

    from tdm_control.dynamics import metadata as model_metadata
    from training.export import ExportError, write_metadata

    ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    config = MLPConfig(**ckpt["mlp_config"])
    model = DeltaMLP(config).eval()
    model.load_state_dict(ckpt["model"])
    n, m = config.observation_size, config.action_size
    tmp = f"{out_path}.tmp{os.getpid()}.onnx"
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    try:
        batch = torch.export.Dim("batch", min=1, max=1 << 20)
        example = (torch.zeros(3, n), torch.zeros(3, m))
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(model, example, tmp, input_names=["obs", "action"],
                              output_names=["next_obs", "reward"],
                              dynamic_shapes={"obs": {0: batch}, "action": {0: batch}}, dynamo=True,
                              external_data=False)
        tokenizer = Tokenizer(n, m)
        metadata = model_metadata.build_metadata(
            ckpt["task"], tokenizer.describe(), {"context_tokens": 0, **ckpt["mlp_config"]},
            ckpt["dataset_hash"], extra={"kind": config.kind, "training_steps": ckpt["step"],
                                         "action_repeat": ckpt.get("action_repeat", 1),
                                         "parameters": sum(p.numel() for p in model.parameters())})
        write_metadata(tmp, metadata)
        rng = np.random.default_rng(0)
        obs = rng.normal(0, 1, (64, n)).astype(np.float32)
        action = rng.uniform(-1, 1, (64, m)).astype(np.float32)
        session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        got = session.run(None, {"obs": obs, "action": action})
        with torch.no_grad():
            want = [t.numpy() for t in model(torch.from_numpy(obs), torch.from_numpy(action))]
        delta = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
        if not delta <= max_delta:
            raise ExportError(f"ONNX outputs differ from torch by up to {delta:.3g} > {max_delta}")
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {"path": out_path, "bytes": os.path.getsize(out_path), "max_output_delta": delta}
