"""One YAML file describes how a shipped model is made: data, model, schedule, export.

    tdm-train all --config config/training/cartpole_swingup.yaml

runs collect -> fit -> export; each stage can also run alone and each resumes
where it stopped. Values derived from the task (vocabulary, tokens per step)
are computed here, once, never written back into the config.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from tdm_control.config import ConfigError, check, from_dict
from tdm_control.files import read_yaml
from tdm_control.tasks import make_task
from tdm_control.tokenizer import Tokenizer
from training.collect import CollectConfig
from training.export import ExportConfig
from training.model import TDMConfig
from training.train import TrainConfig

MODEL_KEYS_DERIVED = ("vocab_size", "step_tokens", "kind", "observation_size", "action_size")
KINDS = ("tdm", "mlp_delta", "mlp_tokenized")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    task: str
    """Registered task the model is for."""
    data_dir: str
    """Dataset folder: `tdm-train collect` fills it."""
    run_dir: str
    """Checkpoint and TensorBoard folder."""
    model_path: str
    """Where the exported ONNX model goes."""
    extra_data_dirs: tuple[str, ...] = ()
    """More dataset folders trained on beside data_dir, each collected by its own config
    (same task and action repeat, any data policy)."""
    kind: str = "tdm"
    """'tdm' (the transformer), or a baseline: 'mlp_delta', 'mlp_tokenized'."""
    collect: dict = dataclasses.field(default_factory=dict)
    """CollectConfig keys (task is taken from above)."""
    model: dict = dataclasses.field(default_factory=dict)
    """TDMConfig keys (or MLPConfig keys for a baseline), except those that follow from the task."""
    train: dict = dataclasses.field(default_factory=dict)
    """TrainConfig keys."""
    export: dict = dataclasses.field(default_factory=dict)
    """ExportConfig keys."""

    def __post_init__(self) -> None:
        check(self.kind in KINDS, "kind", f"unknown model kind {self.kind!r}; choose one of: {', '.join(KINDS)}")
        check("task" not in self.collect, "collect.task", "set the task once, at the top level")
        check(len(set(map(os.path.normpath, self.data_dirs))) == len(self.data_dirs), "extra_data_dirs",
              "names a folder twice (or data_dir again); each folder's episodes are pooled once")
        for key in MODEL_KEYS_DERIVED:
            check(key not in self.model, f"model.{key}", "follows from the task; remove it")

    @property
    def data_dirs(self) -> list[str]:
        """Every folder the model trains on: data_dir first."""
        return [self.data_dir, *self.extra_data_dirs]

    def collect_config(self, **overrides: Any) -> CollectConfig:
        return from_dict(CollectConfig, {**self.collect, "task": self.task, **overrides}, where="collect")

    def model_config(self):
        """TDMConfig, or MLPConfig for a baseline, with the task-derived sizes filled in."""
        task = make_task(self.task)
        if self.kind != "tdm":
            from training.baselines import MLPConfig

            return from_dict(MLPConfig, {**self.model, "kind": self.kind, "observation_size": task.observation_size,
                                         "action_size": task.action_size}, where="model")
        tokenizer = Tokenizer(task.observation_size, task.action_size)
        return from_dict(TDMConfig, {**self.model, "vocab_size": tokenizer.vocab_size,
                                     "step_tokens": tokenizer.step_tokens}, where="model")

    def train_config(self, **overrides: Any) -> TrainConfig:
        return from_dict(TrainConfig, {**self.train, **overrides}, where="train")

    def export_config(self) -> ExportConfig:
        return from_dict(ExportConfig, self.export, where="export")


def _read_yaml(path: str) -> dict[str, Any]:
    return read_yaml(path, "training config")


def load_pipeline(path: str) -> PipelineConfig:
    """Reads and validates a pipeline YAML; every section's keys are checked now, not mid-run.

    `data_from: other.yaml` (relative to this file) takes task, data_dir,
    extra_data_dirs and collect from another pipeline, so a baseline trains on
    exactly the TDM's data.
    """
    raw = _read_yaml(path)
    if "data_from" in raw:
        base_path = os.path.join(os.path.dirname(path), raw.pop("data_from"))
        base = _read_yaml(base_path)
        for key in ("task", "data_dir", "extra_data_dirs", "collect"):
            if key in raw:
                raise ConfigError(f"{path}: {key} comes from {base_path} (data_from); remove it here")
            if key in base:
                raw[key] = base[key]
    config = from_dict(PipelineConfig, raw, where=path)
    config.collect_config()
    config.model_config()
    config.train_config()
    config.export_config()
    return config
