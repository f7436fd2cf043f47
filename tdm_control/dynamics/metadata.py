"""What an exported TDM says about itself, and the check that it fits the task at hand.

The export writes one JSON document into the ONNX file's metadata under
`METADATA_KEY`; the runtime reads it back before it plans anything, so a model
trained for another robot is refused with a message saying what differs.

Integrity. The document also carries `weights_sha256`, a digest of everything in
the file but the metadata itself: the graph with its weights, the opsets, the
producer. The runtime recomputes it at load (`check_integrity`), so a file whose
weights were altered or damaged after export (a NaN written into a weight, a bad
copy) is refused instead of planning with garbage. The digest is computed from
the file's bytes with a few lines of protobuf reading (no `onnx` package at run
time): the top-level fields of the ModelProto other than `metadata_props`.
Models exported before digests were written load with a warning (re-export, or
write the metadata again with `training.export.write_metadata`, to add one); the
shipped models carry one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tdm_control.config import ConfigError

METADATA_KEY = "tdm_control"
FORMAT_VERSION = 1

TASK_FIELDS = ("task", "observation_size", "action_size", "joint_names", "actuator_names",
               "observation_layout", "control_timestep")
"""Fields of `Task.describe()` a model must agree with to drive that task."""


def build_metadata(task: dict[str, Any], tokenizer: dict[str, Any], model_config: dict[str, Any],
                   dataset_hash: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata document for an exported model.

    Args:
      task: `Task.describe()` of the task the model was trained on, or a generalist's pooled
        description ({"task": "generalist", "environments": [Task.describe(), ...]}).
      tokenizer: `Tokenizer.describe()`.
      model_config: the TDM config (context window, widths).
      dataset_hash: sha256 naming the training data.
      extra: anything else worth recording (training steps, losses).
    """
    if is_generalist(task):  # every environment's description; the runtime takes any task that fits
        task_fields = {"task": task["task"], "environments": task["environments"]}
    else:
        task_fields = {**{k: task[k] for k in TASK_FIELDS}, "n_sub_steps": task.get("n_sub_steps")}
    return {
        "format_version": FORMAT_VERSION,
        "kind": "tdm",
        **task_fields,
        "tokenizer": tokenizer,
        "context_tokens": model_config["context_tokens"],
        "step_layout": tokenizer["step_layout"],
        "model_config": model_config,
        "dataset_hash": dataset_hash,
        **(extra or {}),
    }


DIGEST_KEY = "weights_sha256"
"""Metadata key of the digest of everything in the file but the metadata (see the module docstring)."""
_METADATA_PROPS_FIELD = 14
"""Field number of `metadata_props` in onnx.proto's ModelProto."""


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated or malformed protobuf varint")
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7


def weights_digest(data: bytes) -> str:
    """sha256 of a serialised ONNX ModelProto's top-level fields other than `metadata_props`, in file order.

    Raises:
      ValueError for bytes that are not a well-formed protobuf message.
    """
    digest = hashlib.sha256()
    i = 0
    while i < len(data):
        start = i
        key, i = _varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            length, i = _varint(data, i)
            i += length
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {start}")
        if i > len(data):
            raise ValueError(f"protobuf field {field} at byte {start} runs past the end of the data")
        if field != _METADATA_PROPS_FIELD:
            digest.update(data[start:i])
    return digest.hexdigest()


def file_weights_digest(path: str) -> str:
    """`weights_digest` of the ONNX file at `path`."""
    with open(path, "rb") as f:
        return weights_digest(f.read())


def check_integrity(meta: dict[str, Any], path: str) -> None:
    """Raises ConfigError when the file's digest differs from the one its metadata records (no digest: no check)."""
    want = meta.get(DIGEST_KEY)
    if want is None:
        return
    try:
        have = file_weights_digest(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} cannot be read to check its integrity: {e}") from None
    if have != want:
        raise ConfigError(f"{path} is not the model that was exported: its weights digest is {have[:16]}..., its "
                          f"metadata records {want[:16]}... (the file was altered or damaged after export); "
                          "export it again, or restore the file")


def integrity_warnings(meta: dict[str, Any], path: str) -> tuple[str, ...]:
    """A warning for a model whose integrity cannot be checked (exported before digests were written)."""
    if DIGEST_KEY in meta:
        return ()
    return (f"{path} carries no weights digest (exported before digests were written): damage to its weights "
            "cannot be detected at load; export it again with `tdm-train export` to add one",)


def encode(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, sort_keys=True)


def decode(text: str | None, path: str) -> dict[str, Any]:
    """Parses the metadata document; a clear error for a file that is not a tdm_control model."""
    if not text:
        raise ConfigError(f"{path} carries no '{METADATA_KEY}' metadata: it is not a model exported by "
                          f"tdm_control (export one with `tdm-train export`)")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: the '{METADATA_KEY}' metadata is not valid JSON ({e})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{path}: metadata format {meta.get('format_version')!r}, this runtime reads "
                          f"{FORMAT_VERSION}; re-export the model with this version of tdm_control")
    return meta


def is_generalist(meta: dict[str, Any]) -> bool:
    """Whether a model (or a task description) was trained across environments: it lists them."""
    return "environments" in meta


def _same_task(environment: dict[str, Any], task: dict[str, Any]) -> bool:
    return all(json.loads(json.dumps(environment.get(k))) == json.loads(json.dumps(task.get(k)))
               for k in TASK_FIELDS)


def task_notes(meta: dict[str, Any], task: dict[str, Any]) -> tuple[str, ...]:
    """What a generalist model says about a task at load: whether the task was in its training set."""
    if not is_generalist(meta):
        return ()
    names = [e["task"] for e in meta["environments"]]
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    if any(_same_task(e, task) for e in meta["environments"]):
        return (f"generalist model trained on {len(names)} environments ({shown}); {task['task']} is one of them",)
    return (f"zero-shot: {task['task']} is not among the {len(names)} environments this generalist model was "
            f"trained on ({shown}); it plans from what the history shows of the dynamics",)


def check_task(meta: dict[str, Any], task: dict[str, Any], path: str) -> None:
    """Raises ConfigError listing every task field where the model and the task differ, or, for a
    generalist, when the task's step does not fit the model's local-position table."""
    if is_generalist(meta):
        tokenizer = meta["tokenizer"]
        n_slots, m_slots = tokenizer["observation_slots"], tokenizer["action_slots"]
        n, m = task["observation_size"], task["action_size"]
        if n > n_slots or m > m_slots:
            raise ConfigError(
                f"{path} is a generalist with places for {n_slots} observations and {m_slots} actions per step; "
                f"task {task['task']!r} has {n} observations and {m} actions, so the model cannot represent it. "
                "Pretrain a generalist with larger model.observation_slots/action_slots, or use a model made for "
                f"{task['task']}")
        trained_n = max(e["observation_size"] for e in meta["environments"])
        trained_m = max(e["action_size"] for e in meta["environments"])
        if n > trained_n or m > trained_m:
            raise ConfigError(
                f"{path} is a generalist trained on steps of at most {trained_n} observations and {trained_m} "
                f"actions; task {task['task']!r} has {n} and {m}: the places beyond them were never trained. "
                f"Fine-tune it on data of {task['task']} first (train.init_from), or use a model made for it")
        return
    mismatches = []
    for key in TASK_FIELDS:
        have, want = json.loads(json.dumps(meta.get(key))), json.loads(json.dumps(task.get(key)))
        if have != want:
            mismatches.append(f"{key}: model has {have!r}, task needs {want!r}")
    if mismatches:
        raise ConfigError(
            f"{path} was made for task {meta.get('task')!r}, not {task['task']!r}; it does not match: "
            + "; ".join(mismatches)
            + f". Use a model exported for {task['task']} (e.g. `tdm-train all --config "
            f"config/training/{task['task']}.yaml`) or set the task the model was made for.")
