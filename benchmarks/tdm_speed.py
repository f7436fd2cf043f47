"""Decode speed of the TDM: today's decoder against the sharded one, and against torch.

    python benchmarks/tdm_speed.py                     # shipped cartpole TDM, K = 64 N = 75 and K = 128 N = 50
    python benchmarks/tdm_speed.py --torch-horizon 10  # also torch with and without the key/value cache

Part 1 (the decoders, side by side in one run, on the shipped model's real weights): one plan from one
observation, K candidates over N model steps, each step decoding n observation tokens and a reward token
greedily for all candidates. "one block" is the decoder as it was before sharding: every network call
carries all K candidates and ONNX Runtime uses its default intra-op threads. "sharded" splits the K
candidates into blocks decoded side by side on their own threads, each call single-threaded
(`tdm_control.dynamics.onnx_model.resolve_shards`). Printed per decoder: plan latency (median of
--repeats), sequential network calls per plan, decoded tokens per second, the arithmetic rate achieved
(GFLOP/s, counted from the tokens each call carries) next to this machine's float32 matmul rate, and the
speed-up over "one block". Both decoders' tokens are compared: they must be identical.

Part 2 (--torch-horizon N > 0): the same decoder driving the torch module, and torch re-running the whole
sequence for every token, which is why the cache exists. Needs the `train` extra (torch).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from tdm_control.dynamics.onnx_model import load_onnx_dynamics
from tdm_control.history import History
from tdm_control.tasks import make_task
from tdm_control.tokenizer import Tokenizer


def torch_no_cache_rollout(model, prefix: np.ndarray, local_prefix: np.ndarray, actions_tokens: np.ndarray,
                           tok: Tokenizer) -> np.ndarray:
    """Greedy rollout re-running the full token sequence (K, L) for every decoded token."""
    n, reward_offset, separator, bins = tok.observation_size, tok.reward_offset, tok.separator, tok.bins
    k, horizon, m = actions_tokens.shape
    seq = np.repeat(prefix[None], k, axis=0)  # (K, L)
    local = list(local_prefix)
    decoded = 0
    reward = np.zeros(k, dtype=np.int64)  # (K,) the last decoded reward token
    import torch

    with torch.no_grad():
        for step in range(horizon):
            if step > 0:
                seq = np.concatenate([seq, reward[:, None]], axis=1)
                local.append(tok.local[reward_offset])
            seq = np.concatenate([seq, np.full((k, 1), separator), actions_tokens[:, step]], axis=1)
            local += list(tok.local[reward_offset + 1:])
            for i in range(n + 1):
                logits = model(torch.from_numpy(seq), torch.tensor(local)[None].expand(k, -1))[:, -1, :bins]
                token = logits.argmax(-1).numpy()
                decoded += 1
                if i == n:
                    reward = token
                else:
                    seq = np.concatenate([seq, token[:, None]], axis=1)
                    local.append(tok.local[i])
    return seq


def time_it(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


class CountingSession:
    """An ORT session that counts the candidate tokens its calls carry (sum of batch x new tokens)."""

    def __init__(self, session) -> None:
        self.session, self.tokens = session, 0

    def run(self, outputs, feeds):
        self.tokens += feeds["tokens"].size
        return self.session.run(outputs, feeds)

    def __getattr__(self, name):
        return getattr(self.session, name)


def flops_per_token(config: dict) -> float:
    """Multiply-adds x 2 of one token through the network: projections, attention over the window, the
    MLP and the output head (the embedding look-up is free)."""
    d, ff, window, vocab = config["d_model"], config["d_ff"], config["context_tokens"], config["vocab_size"]
    per_layer = 3 * d * d + 2 * window * d + d * d + 2 * d * ff
    return 2.0 * (config["n_layers"] * per_layer + d * vocab)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matrix-multiply rate (numpy, all cores), GFLOP/s."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a
    best = min(time_it(lambda: a @ a, repeats))
    return 2.0 * size ** 3 / best / 1e9


def compare_decoders(args, task, history, obs, rng) -> None:
    one = load_onnx_dynamics(args.model, task, shards=1)  # ORT's default intra-op threads
    sharded = load_onnx_dynamics(args.model, task, shards=args.shards)
    peak = matmul_gflops()
    per_token = flops_per_token(one.metadata["model_config"])
    tokens_per_step = one.tokenizer.observation_size + 1
    print(f"float32 matmul on this machine (numpy, 2048^2): {peak:.0f} GFLOP/s; "
          f"sharded decoder: {sharded.shards} blocks")
    print()
    print("| decoder | K | N | plan latency (s) | calls per plan | decoded tokens/s | GFLOP/s (of matmul) | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for samples, horizon in args.settings:
        actions = rng.uniform(-1, 1, (samples, horizon, task.action_size))
        reference = None
        baseline = None
        for name, model in (("one block", one), ("sharded", sharded)):
            counter = CountingSession(model.session)
            model.session = counter
            model.rollout(history, obs, actions[:, :2])  # warm-up
            passes, counter.tokens = model.passes, 0
            tokens = model.rollout(history, obs, actions)
            calls, carried = model.passes - passes, counter.tokens
            if reference is None:
                reference = tokens
            elif not all(np.array_equal(a, b) for a, b in zip(reference, tokens)):
                raise SystemExit(f"{name}: predictions differ from the one-block decoder's")
            latency = statistics.median(time_it(lambda m=model, a=actions: m.rollout(history, obs, a),
                                                args.repeats))
            model.session = counter.session
            baseline = baseline or latency
            decoded = samples * horizon * tokens_per_step
            gflops = carried * per_token / latency / 1e9
            print(f"| {name} | {samples} | {horizon} | {latency:.3f} | {calls} | {decoded / latency:,.0f} | "
                  f"{gflops:.1f} ({100 * gflops / peak:.0f}%) | {baseline / latency:.2f}x |", flush=True)
    one.close()
    sharded.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/cartpole_swingup_tdm.onnx")
    parser.add_argument("--settings", type=lambda t: tuple(int(v) for v in t.split("x")), nargs="+",
                        default=[(64, 75), (128, 50)], help="KxN pairs for part 1 (default: 64x75 128x50)")
    parser.add_argument("--shards", type=int, default=0, help="blocks of the sharded decoder (0: automatic)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--session-options", action="store_true",
                        help="part 3: one block under different ONNX Runtime session options (K = 64, N = 20)")
    parser.add_argument("--torch-horizon", type=int, default=0,
                        help="N for part 2, torch with and without the cache (K = 128); 0 skips it")
    args = parser.parse_args()

    task = make_task(_task_of(args.model))
    probe = load_onnx_dynamics(args.model, task, shards=1)
    tok, meta = probe.tokenizer, probe.metadata
    config = meta["model_config"]
    rng = np.random.default_rng(0)
    history = History(probe.history_steps)
    obs = rng.normal(0, 0.5, tok.observation_size)
    for _ in range(probe.history_steps):
        history.append(rng.normal(0, 0.5, tok.observation_size), 0.5, rng.uniform(-1, 1, tok.action_size))
    print(f"model {args.model}: {meta['parameters']} parameters, d_model {config['d_model']}, "
          f"{config['n_layers']} layers, window {config['context_tokens']} tokens; providers {probe.providers}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"onnxruntime {ort_version()}; median of {args.repeats}")
    probe.close()
    compare_decoders(args, task, history, obs, rng)
    if args.session_options:
        compare_session_options(args, task, history, obs, rng)
    if args.torch_horizon > 0:
        compare_torch(args, probe, history, obs, rng)


def compare_session_options(args, task, history, obs, rng) -> None:
    """One block (all K candidates per call) under ONNX Runtime's graph optimisation levels, intra-op
    thread counts and spinning: what `make_session` and `resolve_shards` chose from."""
    import onnxruntime as ort

    from tdm_control.dynamics.onnx_model import OnnxTDM, open_model

    _, metadata = open_model(args.model, task, "cpu", 1)
    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}
    settings = [("all", 1, True), ("extended", 1, True), ("basic", 1, True), ("all", 2, True), ("all", 2, False)]
    actions = rng.uniform(-1, 1, (64, 20, task.action_size))
    print()
    print("one block, K = 64, N = 20, under ONNX Runtime session options")
    print("| graph optimisation | intra-op threads | spinning | plan latency (s) |")
    print("|---|---|---|---|")
    for level, threads, spinning in settings:
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[level]
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
        model = OnnxTDM(args.model, task, session=session, metadata=metadata, shards=1)
        model.rollout(history, obs, actions[:, :2])
        latency = statistics.median(time_it(lambda m=model: m.rollout(history, obs, actions), args.repeats))
        print(f"| {level} | {threads} | {'on' if spinning else 'off'} | {latency:.3f} |", flush=True)


def ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def compare_torch(args, model, history, obs, rng) -> None:
    import torch

    from tdm_control.dynamics.tdm_decoder import TDMDecoder
    from training.export import torch_runner
    from training.model import TDM, TDMConfig

    tok, config = model.tokenizer, TDMConfig(**model.metadata["model_config"])
    torch.manual_seed(0)
    net = TDM(config).eval().baked()  # value features folded into the table, as exported
    samples, horizon = 128, args.torch_horizon
    tokens = samples * horizon * (tok.observation_size + 1)
    print()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, random weights of the same shapes; K = 128")
    print("| engine | N | decoded tokens | tokens/s | plan latency (s) |")
    print("|---|---|---|---|---|")
    actions = rng.uniform(-1, 1, (samples, horizon, tok.action_size))
    cached = TDMDecoder(torch_runner(net), tok, config.context_tokens, config.n_layers, config.n_heads,
                        config.head_dim)
    prefix, local = model.decoder.prefix(history, obs)
    action_tokens = tok.encode(actions)
    engines = {
        "torch, KV cache": lambda: cached.rollout(history, obs, actions),
        "torch, no cache": lambda: torch_no_cache_rollout(net, prefix, local, action_tokens, tok),
    }
    for name, run in engines.items():
        latency = statistics.median(time_it(run, args.repeats))
        print(f"| {name} | {horizon} | {tokens} | {tokens / latency:,.0f} | {latency:.3f} |", flush=True)


def _task_of(path: str) -> str:
    import onnx

    from tdm_control.dynamics import metadata as model_metadata

    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    return model_metadata.decode(props.get(model_metadata.METADATA_KEY), path)["task"]


if __name__ == "__main__":
    main()
