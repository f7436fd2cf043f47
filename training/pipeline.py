"""One YAML file describes how a shipped model is made: data, model, schedule, export.

    tdm-train all --config config/training/cartpole_swingup.yaml

runs collect -> fit -> export; each stage can also run alone and each resumes
where it stopped. Values derived from the task (vocabulary, tokens per step)
are computed here, once, never written back into the config.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from tdm_control.config import ConfigError, check, from_dict
from tdm_control.tasks import make_task
from tdm_control.tokenizer import Tokenizer
from training.collect import CollectConfig
from training.export import ExportConfig
from training.model import TDMConfig
from training.train import TrainConfig

MODEL_KEYS_DERIVED = ("vocab_size", "step_tokens")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    task: str
    """Registered task the model is for."""
    data_dir: str
    """Dataset folder (collected episodes)."""
    run_dir: str
    """Checkpoint and TensorBoard folder."""
    model_path: str
    """Where the exported ONNX model goes."""
    collect: dict = dataclasses.field(default_factory=dict)
    """CollectConfig keys (task is taken from above)."""
    model: dict = dataclasses.field(default_factory=dict)
    """TDMConfig keys except vocab_size and step_tokens, which follow from the task."""
    train: dict = dataclasses.field(default_factory=dict)
    """TrainConfig keys."""
    export: dict = dataclasses.field(default_factory=dict)
    """ExportConfig keys."""

    def __post_init__(self) -> None:
        check("task" not in self.collect, "collect.task", "set the task once, at the top level")
        for key in MODEL_KEYS_DERIVED:
            check(key not in self.model, f"model.{key}", "follows from the task; remove it")

    def collect_config(self, **overrides: Any) -> CollectConfig:
        return from_dict(CollectConfig, {**self.collect, "task": self.task, **overrides}, where="collect")

    def model_config(self) -> TDMConfig:
        task = make_task(self.task)
        tokenizer = Tokenizer(task.observation_size, task.action_size)
        return from_dict(TDMConfig, {**self.model, "vocab_size": tokenizer.vocab_size,
                                     "step_tokens": tokenizer.step_tokens}, where="model")

    def train_config(self, **overrides: Any) -> TrainConfig:
        return from_dict(TrainConfig, {**self.train, **overrides}, where="train")

    def export_config(self) -> ExportConfig:
        return from_dict(ExportConfig, self.export, where="export")


def load_pipeline(path: str) -> PipelineConfig:
    """Reads and validates a pipeline YAML; every section's keys are checked now, not mid-run."""
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"training config {path} does not exist") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    config = from_dict(PipelineConfig, raw, where=path)
    config.collect_config()
    config.model_config()
    config.train_config()
    config.export_config()
    return config
