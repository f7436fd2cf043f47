"""Exports a trained TDM to ONNX for autoregressive inference, and proves the export faithful.

The graph takes new tokens and one key and one value cache input per layer,
and returns logits and only the new keys and values (the layout measured
fastest on CPU). The file carries its own description (task, sizes, joint
names, tokenizer, context window, step layout, a hash of the training data).

Before the file is written where it was asked for, a parity check runs:
  1. the graph's logits, decoding a real token stream token by token through
     the sliding-window cache, against the torch model's full-window logits;
  2. greedy rollouts of random action sequences decoded with ONNX Runtime and
     with the torch module through the same decoder must be identical.
If either fails, nothing is written and ExportError says by how much.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from typing import Any

import numpy as np
import torch

from tdm_control.dynamics import metadata as model_metadata
from tdm_control.dynamics.onnx_model import make_session
from tdm_control.dynamics.tdm_decoder import RingCache, TDMDecoder
from tdm_control.history import History
from tdm_control.tokenizer import Tokenizer
from training.dataset import is_generalist, load_dataset, read_metadata
from training.model import TDM, IncrementalTDM, TDMConfig
from training.train import load_checkpoint, model_from_checkpoint, save_checkpoint


class ExportError(RuntimeError):
    """The exported graph does not reproduce the torch model."""


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    max_logit_delta: float = 2e-3
    """Largest |logit difference| torch vs ONNX Runtime accepted (float32 arithmetic differs in order)."""
    parity_tokens: int = 160
    """Tokens of a real episode decoded one by one in the logit check."""
    parity_candidates: int = 8
    """Random action sequences in the greedy-rollout check."""
    parity_horizon: int = 12
    """Steps of each greedy rollout."""
    opset: int = 18
    """ONNX opset."""
    weights: bool = False
    """Also write the checkpoint without its optimiser state beside the ONNX file (`<model>.pt`), so a
    user fine-tunes from the shipped file (`train.init_from: models/<model>.pt`) without the run folder."""


def input_names(layers: int) -> list[str]:
    return ["tokens", "local", "positions", "cache_mask"] + [f"past_{kv}_{i}" for i in range(layers) for kv in "kv"]


def output_names(layers: int) -> list[str]:
    return ["logits"] + [f"new_{kv}_{i}" for i in range(layers) for kv in "kv"]


def export_graph(model: TDM, path: str, opset: int) -> None:
    """Writes the incremental graph with dynamic batch and new-token axes."""
    c = model.config
    example_batch, example_tokens = 3, 2
    args = (torch.zeros(example_batch, example_tokens, dtype=torch.int64),
            torch.zeros(example_tokens, dtype=torch.int64), torch.arange(example_tokens),
            torch.zeros(example_tokens, c.context_tokens),
            *[torch.zeros(example_batch, c.n_heads, c.context_tokens, c.head_dim) for _ in range(2 * c.n_layers)])
    batch = torch.export.Dim("batch", min=1, max=65536)
    tokens = torch.export.Dim("new_tokens", min=1, max=c.context_tokens)
    shapes = {"tokens": {0: batch, 1: tokens}, "local": {0: tokens}, "positions": {0: tokens},
              "cache_mask": {0: tokens}, "past": tuple({0: batch} for _ in range(2 * c.n_layers))}
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates every stage
        torch.onnx.export(IncrementalTDM(model.baked()).eval(), args, path, input_names=input_names(c.n_layers),
                          output_names=output_names(c.n_layers), dynamic_shapes=shapes, dynamo=True,
                          opset_version=opset, external_data=False)


def write_metadata(path: str, metadata: dict[str, Any]) -> None:
    """Writes `metadata` into the ONNX file at `path`, with the digest of the rest of the file
    (`metadata.DIGEST_KEY`), and checks that the file written has that digest."""
    import onnx

    proto = onnx.load(path)
    del proto.metadata_props[:]
    proto.producer_name = "tdm_control"
    digest = model_metadata.weights_digest(proto.SerializeToString())
    entry = proto.metadata_props.add()
    entry.key = model_metadata.METADATA_KEY
    entry.value = model_metadata.encode({**metadata, model_metadata.DIGEST_KEY: digest})
    onnx.save(proto, path)
    written = model_metadata.file_weights_digest(path)
    if written != digest:
        raise ExportError(f"{path}: the file written has weights digest {written}, not {digest}")


def torch_runner(model: TDM):
    """A decoder runner backed by the torch module (float32, no grad)."""
    module = IncrementalTDM(model).eval()

    def run(feeds: dict[str, np.ndarray]):
        names = input_names(model.config.n_layers)
        with torch.no_grad():
            outputs = module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names])
        return [o.numpy() for o in outputs]

    return run


def _decoder(runner, tokenizer: Tokenizer, config: TDMConfig) -> TDMDecoder:
    return TDMDecoder(runner, tokenizer, config.context_tokens, config.n_layers, config.n_heads, config.head_dim)


def check_logits(model: TDM, session, tokenizer: Tokenizer, tokens: np.ndarray, local: np.ndarray) -> float:
    """Max |logit| difference: torch forward over the whole stream vs ONNX Runtime token by token.

    The run-time cache drops tokens older than the attention window, which is
    what the training forward's sliding-window mask does, so the two must agree
    at every position, also long past the window.
    """
    c = model.config
    cache = RingCache(c.n_layers, 1, c.n_heads, c.context_tokens, c.head_dim)
    decoder = _decoder(lambda feeds: session.run(None, feeds), tokenizer, c)
    got = np.stack([decoder.feed(cache, tokens[None, i:i + 1], local[i:i + 1])[0, -1]
                    for i in range(len(tokens))])  # (L, V)
    with torch.no_grad():
        want = model(torch.from_numpy(tokens[None]), torch.from_numpy(local[None]))[0].numpy()  # (L, V)
    return float(np.abs(got - want).max())


def export(checkpoint_path: str, out_path: str, config: ExportConfig = ExportConfig()) -> dict[str, Any]:
    """Exports the checkpoint to `out_path` after the parity check; returns the check's numbers."""
    checkpoint = load_checkpoint(checkpoint_path)
    model = model_from_checkpoint(checkpoint)
    tokenizer = Tokenizer.from_description(checkpoint["tokenizer"])
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = f"{out_path}.tmp{os.getpid()}.onnx"
    try:
        export_graph(model, tmp, config.opset)
        metadata = model_metadata.build_metadata(
            checkpoint["task"], tokenizer.describe(), checkpoint["model_config"], checkpoint["dataset_hash"],
            extra={"training_steps": checkpoint["step"], "parameters": model.num_parameters(),
                   "action_repeat": checkpoint.get("action_repeat", 1),
                   "validation": {k: v for k, v in checkpoint.get("metrics", {}).items() if k.startswith("val_")}})
        write_metadata(tmp, metadata)
        layouts = parity_layouts(checkpoint, tokenizer)
        checks = [parity_check(model, tmp, layout, folder, config) for folder, layout in layouts]
        report = {"max_logit_delta": max(c["max_logit_delta"] for c in checks),
                  "greedy_tokens_compared": sum(c["greedy_tokens_compared"] for c in checks),
                  "greedy_mismatches": 0,
                  "layouts": [[t.observation_size, t.action_size] for _, t in layouts]}
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if config.weights:
        weights = weights_path(out_path)
        save_checkpoint(weights, {k: v for k, v in checkpoint.items() if k != "optimizer"})
        report["weights"] = weights
    return {"path": out_path, "bytes": os.path.getsize(out_path), **report}


def weights_path(onnx_path: str) -> str:
    """Where `export.weights` writes the fine-tunable checkpoint of an exported model: <model>.pt."""
    return os.path.splitext(onnx_path)[0] + ".pt"


def parity_layouts(checkpoint: dict[str, Any], tokenizer: Tokenizer) -> list[tuple[str | None, Tokenizer]]:
    """(dataset folder or None, tokenizer) for each step layout the checkpoint was trained on: one for
    a specialist, one per distinct (n, m) of a generalist's environments (first folder holding it)."""
    task = checkpoint["task"]
    if not is_generalist(task):
        return [(checkpoint.get("dataset_dir"), tokenizer)]
    folders = {}
    for folder in checkpoint.get("dataset_dirs", []):
        if os.path.isdir(folder):
            t = read_metadata(folder)["task"]
            folders.setdefault((t["observation_size"], t["action_size"]), folder)
    sizes = dict.fromkeys((e["observation_size"], e["action_size"]) for e in task["environments"])
    return [(folders.get(size), dataclasses.replace(tokenizer, observation_size=size[0], action_size=size[1]))
            for size in sizes]


def parity_check(model: TDM, path: str, tokenizer: Tokenizer, folder: str | None,
                 config: ExportConfig) -> dict[str, Any]:
    """Raises ExportError unless ONNX Runtime reproduces the torch model (see module docstring) on the step
    layout of `tokenizer`, with an episode of dataset `folder` when it is at hand."""
    session = make_session(path, device="cpu")
    rng = np.random.default_rng(0)
    # 1. Logits on a real token stream when the dataset is at hand, else on a random valid layout.
    obs, rewards, actions = _parity_episode(folder, tokenizer, rng)
    steps = tokenizer.tokenize_steps(obs[None], rewards[None], actions[None])[0][: config.parity_tokens]
    local = tokenizer.local_positions(len(steps))
    delta = check_logits(model, session, tokenizer, steps.astype(np.int64), local)
    if not delta <= config.max_logit_delta:
        raise ExportError(f"ONNX logits differ from torch by up to {delta:.3g} > {config.max_logit_delta}")
    # 2. Greedy rollouts through the same decoder.
    history = History(64)
    for t in range(min(4, len(actions) - 1)):
        history.append(obs[t], rewards[t], actions[t])
    history.current_reward = float(rewards[min(4, len(actions) - 1)])
    start = obs[min(4, len(actions) - 1)]
    candidates = rng.uniform(-1, 1, (config.parity_candidates, config.parity_horizon, tokenizer.action_size))
    onnx_decoder = _decoder(lambda feeds: session.run(None, feeds), tokenizer, model.config)
    torch_decoder = _decoder(torch_runner(model), tokenizer, model.config)
    got = onnx_decoder.rollout(history, start, candidates)
    want = torch_decoder.rollout(history, start, candidates)
    mismatched = int((got[0] != want[0]).sum() + (got[1] != want[1]).sum())
    if mismatched:
        raise ExportError(f"greedy rollouts differ: {mismatched} of {got[0].size + got[1].size} tokens")
    return {"max_logit_delta": delta, "greedy_tokens_compared": int(got[0].size + got[1].size),
            "greedy_mismatches": 0}


def _parity_episode(folder: str | None, tokenizer: Tokenizer, rng: np.random.Generator):
    if folder and os.path.isdir(folder):
        _, episodes = load_dataset(folder)
        e = episodes[-1]
        return e.observations[:-1], e.rewards[:-1], e.actions
    t = 40
    return (rng.normal(0, 1, (t, tokenizer.observation_size)), rng.uniform(0, 1, t),
            rng.uniform(-1, 1, (t, tokenizer.action_size)))
