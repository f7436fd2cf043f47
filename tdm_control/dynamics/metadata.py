"""What an exported TDM says about itself, and the check that it fits the task at hand.

The export writes one JSON document into the ONNX file's metadata under
`METADATA_KEY`; the runtime reads it back before it plans anything, so a model
trained for another robot is refused with a message saying what differs.
"""

from __future__ import annotations

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
      task: `Task.describe()` of the task the model was trained on.
      tokenizer: `Tokenizer.describe()`.
      model_config: the TDM config (context window, widths).
      dataset_hash: sha256 naming the training data.
      extra: anything else worth recording (training steps, losses).
    """
    return {
        "format_version": FORMAT_VERSION,
        "kind": "tdm",
        **{k: task[k] for k in TASK_FIELDS},
        "n_sub_steps": task.get("n_sub_steps"),
        "tokenizer": tokenizer,
        "context_tokens": model_config["context_tokens"],
        "step_layout": tokenizer["step_layout"],
        "model_config": model_config,
        "dataset_hash": dataset_hash,
        **(extra or {}),
    }


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


def check_task(meta: dict[str, Any], task: dict[str, Any], path: str) -> None:
    """Raises ConfigError listing every task field where the model and the task differ."""
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
