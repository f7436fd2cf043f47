"""Decode speed of the TDM: ONNX Runtime with the key/value cache against torch without one.

    python benchmarks/tdm_speed.py --model models/cartpole_swingup_tdm.onnx --samples 128

For each engine it plans from one observation: K candidates, N steps, each step
decoding n observation tokens and a reward token greedily. Printed: decoded
tokens per second and latency per plan (median of --repeats). Torch without a
cache re-runs the whole sequence for every token, which is why a cache exists;
torch with the cache (the same decoder feeding the torch module) separates the
cache's gain from ONNX Runtime's. Weights are random with the model's shapes:
speed does not depend on their values. Needs the `train` extra (torch).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from tdm_control.dynamics.onnx_model import OnnxTDM
from tdm_control.history import History
from tdm_control.tasks import make_task
from training.export import torch_runner
from training.model import TDM, TDMConfig


def torch_no_cache_rollout(model: TDM, prefix: np.ndarray, local_prefix: np.ndarray, actions_tokens: np.ndarray,
                           n: int, step_tokens: int, reward_offset: int, separator: int, bins: int) -> np.ndarray:
    """Greedy rollout re-running the full token sequence (K, L) for every decoded token."""
    k, horizon, m = actions_tokens.shape
    seq = np.repeat(prefix[None], k, axis=0)  # (K, L)
    local = list(local_prefix)
    decoded = 0
    reward = np.zeros(k, dtype=np.int64)  # (K,) the last decoded reward token
    with torch.no_grad():
        for step in range(horizon):
            if step > 0:
                seq = np.concatenate([seq, reward[:, None]], axis=1)
                local.append(reward_offset)
            seq = np.concatenate([seq, np.full((k, 1), separator), actions_tokens[:, step]], axis=1)
            local += list(range(reward_offset + 1, step_tokens))
            for i in range(n + 1):
                logits = model(torch.from_numpy(seq), torch.tensor(local)[None].expand(k, -1))[:, -1, :bins]
                token = logits.argmax(-1).numpy()
                decoded += 1
                if i == n:
                    reward = token
                else:
                    seq = np.concatenate([seq, token[:, None]], axis=1)
                    local.append(i)
    return seq


def time_it(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/cartpole_swingup_tdm.onnx")
    parser.add_argument("--samples", type=int, default=128, help="K")
    parser.add_argument("--horizons", type=int, nargs="+", default=[10, 100], help="N values for ONNX Runtime")
    parser.add_argument("--torch-horizon", type=int, default=10,
                        help="N for the torch engines (no cache is slow); 0 skips them")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads for both engines (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = OnnxTDM(args.model, make_task(_task_of(args.model)), device="auto", threads=args.threads)
    tok, meta = model.tokenizer, model.metadata
    config = TDMConfig(**meta["model_config"])
    torch.manual_seed(0)
    net = TDM(config).eval().baked()  # value features folded into the table, as exported: no per-step work
    rng = np.random.default_rng(0)
    history = History(model.history_steps)
    obs = rng.normal(0, 0.5, tok.observation_size)
    for _ in range(model.history_steps):
        history.append(rng.normal(0, 0.5, tok.observation_size), 0.5, rng.uniform(-1, 1, tok.action_size))
    tokens_per_step = tok.observation_size + 1
    print(f"model {args.model}: {meta['parameters']} parameters, d_model {config.d_model}, {config.n_layers} layers, "
          f"window {config.context_tokens} tokens; providers {model.providers}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}; K = {args.samples}; median of {args.repeats}")
    print()
    print("| engine | N | decoded tokens | tokens/s | plan latency (s) |")
    print("|---|---|---|---|---|")

    def report(name: str, horizon: int, seconds: list[float]) -> None:
        tokens = args.samples * horizon * tokens_per_step
        latency = statistics.median(seconds)
        print(f"| {name} | {horizon} | {tokens} | {tokens / latency:,.0f} | {latency:.3f} |", flush=True)

    for horizon in args.horizons:
        actions = rng.uniform(-1, 1, (args.samples, horizon, tok.action_size))
        model.rollout(history, obs, actions[:, :2])  # warm-up
        times = time_it(lambda a=actions: model.rollout(history, obs, a), args.repeats)
        report("ONNX Runtime, KV cache", horizon, times)

    horizon = args.torch_horizon
    if horizon < 1:  # --torch-horizon 0: ONNX Runtime only
        return
    actions = rng.uniform(-1, 1, (args.samples, horizon, tok.action_size))
    from tdm_control.dynamics.tdm_decoder import TDMDecoder

    cached = TDMDecoder(torch_runner(net), tok, config.context_tokens, config.n_layers, config.n_heads,
                        config.head_dim)
    report("torch, KV cache", horizon, time_it(lambda: cached.rollout(history, obs, actions), args.repeats))
    prefix, local = model.decoder.prefix(history, obs)
    action_tokens = tok.encode(actions)
    report("torch, no cache", horizon, time_it(lambda: torch_no_cache_rollout(
        net, prefix, local, action_tokens, tok.observation_size, tok.step_tokens, tok.reward_offset,
        tok.separator, tok.bins), args.repeats))


def _task_of(path: str) -> str:
    import onnx

    from tdm_control.dynamics import metadata as model_metadata

    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    return model_metadata.decode(props.get(model_metadata.METADATA_KEY), path)["task"]


if __name__ == "__main__":
    main()
