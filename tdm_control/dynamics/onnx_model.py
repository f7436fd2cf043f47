"""The transformer dynamics model at run time: an exported ONNX file in ONNX Runtime."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tdm_control.config import ConfigError
from tdm_control.dynamics import metadata as model_metadata
from tdm_control.dynamics.base import Dynamics
from tdm_control.dynamics.tdm_decoder import TDMDecoder
from tdm_control.history import History
from tdm_control.tasks import Task
from tdm_control.tokenizer import Tokenizer

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError("ONNX Runtime is needed to run an exported model: pip install -e '.[cpu]' "
                          "(or '.[gpu]' for CUDA)") from e
    return onnxruntime


def make_session(path: str, device: str = "auto", threads: int = 0):
    """An InferenceSession on CUDA when usable (device 'auto' or 'cuda'), else on CPU.

    onnxruntime-gpu falls back to CPU without a word when CUDA libraries are
    missing, so the providers actually in use are read back, logged, and, when
    'cuda' was asked for explicitly, checked.
    """
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}")
    ort = _import_onnxruntime()
    if not os.path.isfile(path):
        raise ConfigError(f"model file {path} does not exist")
    available = ort.get_available_providers()
    wants_cuda = device == "cuda" or (device == "auto" and "CUDAExecutionProvider" in available)
    providers = (["CUDAExecutionProvider"] if wants_cuda else []) + ["CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(path, options, providers=providers)
    except Exception as e:  # ORT raises its own exception types for unreadable files
        raise ConfigError(f"{path} is not a loadable ONNX model: {e}") from None
    in_use = session.get_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in in_use:
        raise ConfigError(f"device 'cuda' was asked for but ONNX Runtime runs {path} on {in_use}: "
                          f"install onnxruntime-gpu with matching CUDA/cuDNN libraries, or use device 'cpu'")
    log.info("ONNX Runtime %s runs %s on %s (available: %s)", ort.__version__, path, in_use, available)
    return session


def resolve_shards(shards: int, threads: int, device: str) -> int:
    """How many candidate blocks a TDM decodes side by side, one thread each.

    The decoder's network calls are small (one token for K candidates). Measured on 2 quiet cores
    (benchmarks/tdm_speed.py, BENCHMARKS.md): two threads each decoding half the candidates with a
    single-threaded ORT call plan 1.12x (K = 64, N = 75) to 1.23x (K = 128, N = 50) faster than one
    call using ORT's two intra-op threads, and without ORT's spinning threads, which would compete
    with the executor and the bridge (1.7x on a loaded machine). So: `shards` when given
    (>= 1); else 1 when the caller asked for one thread (grids run one episode per core) or may run
    on CUDA (one device, which batching serves better), else one per core, at most 4.
    """
    if shards < 0:
        raise ConfigError(f"shards must be >= 0 (0: automatic), got {shards}")
    if shards:
        return shards
    if threads == 1 or device == "cuda":
        return 1
    if device == "auto" and "CUDAExecutionProvider" in _import_onnxruntime().get_available_providers():
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def open_model(path: str, task: Task, device: str = "auto", threads: int = 0):
    """Session and checked metadata of an exported model; ConfigError if its weights are not the ones it
    was exported with (`metadata.check_integrity`) or it was made for another task."""
    session = make_session(path, device, threads)
    meta_props = session.get_modelmeta().custom_metadata_map
    metadata = model_metadata.decode(meta_props.get(model_metadata.METADATA_KEY), path)
    model_metadata.check_integrity(metadata, path)
    model_metadata.check_task(metadata, task.describe(), path)
    return session, metadata


def load_onnx_dynamics(path: str, task: Task, device: str = "auto", threads: int = 0, shards: int = 0) -> Dynamics:
    """The right runtime for an exported model: a TDM, or a baseline MLP.

    `shards` > 1 (the default on a multi-core CPU, see `resolve_shards`) opens the session with one
    intra-op thread: a TDM then decodes its candidates in blocks on that many threads.
    """
    shards = resolve_shards(shards, threads, device)
    session, metadata = open_model(path, task, device, 1 if shards > 1 else threads)
    kind = metadata.get("kind")
    if kind == "tdm":
        return OnnxTDM(path, task, session=session, metadata=metadata, shards=shards)
    if kind in ("mlp_delta", "mlp_tokenized"):
        from tdm_control.dynamics.onnx_mlp import OnnxMLP

        return OnnxMLP(session, metadata, path, task)
    raise ConfigError(f"{path} holds a model of unknown kind {kind!r}; this runtime knows tdm, mlp_delta, "
                      f"mlp_tokenized")


class OnnxTDM(Dynamics):
    """Answers `Dynamics.rollout` with an exported transformer dynamics model.

    At load, the model's metadata is checked against the task (task name,
    observation and action sizes and layout, joint names, control timestep);
    any difference is a ConfigError naming it. Rollouts decode observation and
    reward tokens greedily for all K candidates at once, conditioned on the
    episode history that fits the model's context window.
    """

    name = "tdm"
    proposes = True

    def __init__(self, path: str, task: Task, device: str = "auto", threads: int = 0,
                 session=None, metadata: dict | None = None, shards: int = 0) -> None:
        self.path = path
        self.task = task
        self.shards = resolve_shards(shards, threads, device)
        """Candidate batches decoded at once, each on its own thread (see `resolve_shards`)."""
        if session is None:
            # Sharded decoding runs one single-threaded ORT call per shard at a time: the parallelism is
            # ours (whole candidates per core), not ORT's (per operator, which gains little on these
            # small matrices and spins threads that compete with the shards).
            session, metadata = open_model(path, task, device, 1 if self.shards > 1 else threads)
        self.session, self.metadata = session, metadata
        if self.metadata.get("kind") != "tdm":
            raise ConfigError(f"{path} holds a {self.metadata.get('kind')!r} model, not a TDM")
        # The task's layout in the model's local-position table (a generalist's may be larger than the task).
        self.tokenizer = Tokenizer.from_description(self.metadata["tokenizer"], task.observation_size,
                                                    task.action_size)
        config = self.metadata["model_config"]
        self.action_repeat = int(self.metadata.get("action_repeat", 1))
        self.providers = self.session.get_providers()
        # One decoder per shard: a decoder holds no state between calls but its pass counter, and an
        # ORT session may be run from several threads at once.
        self.decoders = [TDMDecoder(self._run, self.tokenizer, config["context_tokens"], config["n_layers"],
                                    config["n_heads"], config["d_model"] // config["n_heads"])
                         for _ in range(self.shards)]
        self.decoder = self.decoders[0]
        self.history_steps = self.decoder.history_steps
        self.observation_limit = self.tokenizer.max_value  # mu-law clips beyond it: the model would see +-max
        self.warnings = model_metadata.integrity_warnings(self.metadata, path)
        self.notes = model_metadata.task_notes(self.metadata, task.describe())
        self._pool: ThreadPoolExecutor | None = None

    def memory_bytes(self, samples: int, horizon: int) -> int:
        """Per candidate: its key/value cache (float32, every layer) three times over (the cache, its
        expansion from the shared prefix, ORT's working copies), one call's logits, attention and
        feed-forward activations for a step's tokens (float32), and the decoded tokens and values."""
        c = self.metadata["model_config"]
        cache = 2 * c["n_layers"] * c["d_model"] * c["context_tokens"] * 4
        tokens = self.tokenizer.step_tokens
        call = 4 * tokens * (c["vocab_size"] + c["n_heads"] * c["context_tokens"] + 4 * c["d_model"] + c["d_ff"])
        decoded = horizon * (self.tokenizer.observation_size + 1) * 16
        return samples * (3 * cache + 2 * call + decoded)

    @property
    def passes(self) -> int:
        """Sequential network calls made so far: those of the longest shard (shards run side by side)."""
        return max(d.passes for d in self.decoders)

    def _run(self, feeds: dict[str, np.ndarray]):
        return self.session.run(None, feeds)

    def _sharded(self, method: str, history: History, obs: np.ndarray, batch: np.ndarray):
        """Calls decoder `method`(history, obs, rows) on row blocks of `batch` (K, N, m) in parallel;
        each output is concatenated back along K. A candidate's tokens do not depend on its block:
        every row of the network is computed on its own."""
        shards = min(self.shards, len(batch))
        if shards <= 1:
            return getattr(self.decoder, method)(history, obs, batch)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.shards, thread_name_prefix="tdm-shard")
        blocks = np.array_split(batch, shards, axis=0)
        futures = [self._pool.submit(getattr(decoder, method), history, obs, block)
                   for decoder, block in zip(self.decoders, blocks)]
        parts = [f.result() for f in futures]
        return tuple(np.concatenate(outputs, axis=0) for outputs in zip(*parts))

    def rollout(self, history: History, obs: np.ndarray, actions: np.ndarray):
        actions = self.check_actions(actions, self.task.action_size)
        obs_tokens, reward_tokens = self._sharded("rollout", history, obs, actions)
        return self.tokenizer.decode(obs_tokens), self.tokenizer.decode(reward_tokens)

    def rollout_with_proposals(self, history: History, obs: np.ndarray, noise: np.ndarray):
        noise = self.check_actions(noise, self.task.action_size, what="noise")
        obs_tokens, reward_tokens, actions = self._sharded("rollout_with_proposals", history, obs, noise)
        return self.tokenizer.decode(obs_tokens), self.tokenizer.decode(reward_tokens), actions

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def propose(self, history: History, obs: np.ndarray) -> np.ndarray:
        """The model's behaviour-cloning action (m,) in [-1, 1] at the current step: its mean prediction."""
        return self.decoder.propose(history, obs)
