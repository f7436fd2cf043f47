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
    data_dir: str
    """Dataset folder: `tdm-train collect` fills it (a generalist's: one sub-folder per task)."""
    run_dir: str
    """Checkpoint and TensorBoard folder."""
    model_path: str
    """Where the exported ONNX model goes."""
    task: str = ""
    """Registered task the model is for (a specialist)."""
    tasks: tuple[str, ...] = ()
    """Instead of `task`, a generalist: the registered tasks (or variants, `cartpole_swingup~v3`) it is
    pretrained on, each collected with `collect` into data_dir/<task>. Its local-position table has
    the largest n and m of them unless model.observation_slots/action_slots say more."""
    extra_data_dirs: tuple[str, ...] = ()
    """More dataset folders trained on beside data_dir, each collected by its own config
    (same task and action repeat, any data policy)."""
    kind: str = "tdm"
    """'tdm' (the transformer), or a baseline: 'mlp_delta', 'mlp_tokenized'."""
    collect: dict = dataclasses.field(default_factory=dict)
    """CollectConfig keys (task is taken from above)."""
    collect_episodes: dict = dataclasses.field(default_factory=dict)
    """A generalist's episodes per task where they differ from collect.episodes: {task: episodes}."""
    model: dict = dataclasses.field(default_factory=dict)
    """TDMConfig keys (or MLPConfig keys for a baseline), except those that follow from the task."""
    train: dict = dataclasses.field(default_factory=dict)
    """TrainConfig keys."""
    export: dict = dataclasses.field(default_factory=dict)
    """ExportConfig keys."""

    def __post_init__(self) -> None:
        check(bool(self.task) != bool(self.tasks), "task",
              "give either task (a specialist) or tasks (a generalist pretrained on several), not both or neither")
        check(len(set(self.tasks)) == len(self.tasks), "tasks", "names a task twice")
        check(self.kind in KINDS, "kind", f"unknown model kind {self.kind!r}; choose one of: {', '.join(KINDS)}")
        check(not self.tasks or self.kind == "tdm", "kind", "a generalist (tasks:) is a TDM")
        from tdm_control.tasks.variants import SEPARATOR, heldout

        for task in self.tasks:
            check(not (SEPARATOR in task and heldout(task)), "tasks",
                  f"{task} is a held-out variant (tdm_control.tasks.variants.FAMILY_SPLITS): no training data may "
                  "touch it, so that zero-shot results on it mean what they say")
        check("task" not in self.collect, "collect.task", "set the task once, at the top level")
        for task, episodes in self.collect_episodes.items():
            check(task in self.tasks, "collect_episodes", f"{task} is not one of tasks")
            check(isinstance(episodes, int) and episodes > 0, "collect_episodes", f"{task}: give a positive "
                  f"number of episodes, not {episodes!r}")
        check(len(set(map(os.path.normpath, self.data_dirs))) == len(self.data_dirs), "extra_data_dirs",
              "names a folder twice (or data_dir again); each folder's episodes are pooled once")
        for key in MODEL_KEYS_DERIVED:
            check(key not in self.model, f"model.{key}", "follows from the task; remove it")

    @property
    def collected(self) -> list[tuple[str, str]]:
        """(task, folder) of every dataset `tdm-train collect` fills: data_dir, or one sub-folder per task."""
        if self.task:
            return [(self.task, self.data_dir)]
        return [(task, os.path.join(self.data_dir, task)) for task in self.tasks]

    @property
    def data_dirs(self) -> list[str]:
        """Every folder the model trains on: the collected ones first."""
        return [folder for _, folder in self.collected] + list(self.extra_data_dirs)

    def collect_config(self, task: str | None = None, **overrides: Any) -> CollectConfig:
        """The collection config of `task` (default: the pipeline's one task, or its first)."""
        task = task or self.task or self.tasks[0]
        episodes = {"episodes": self.collect_episodes[task]} if task in self.collect_episodes else {}
        return from_dict(CollectConfig, {**self.collect, "task": task, **episodes, **overrides}, where="collect")

    def model_config(self):
        """TDMConfig, or MLPConfig for a baseline, with the task-derived sizes filled in."""
        tasks = [make_task(t) for t in (self.tasks or (self.task,))]
        if self.kind != "tdm":
            from training.baselines import MLPConfig

            (task,) = tasks
            return from_dict(MLPConfig, {**self.model, "kind": self.kind, "observation_size": task.observation_size,
                                         "action_size": task.action_size}, where="model")
        slots = {}
        if self.tasks or "observation_slots" in self.model or "action_slots" in self.model:
            slots = {"observation_slots": self.model.get("observation_slots",
                                                         max(t.observation_size for t in tasks)),
                     "action_slots": self.model.get("action_slots", max(t.action_size for t in tasks))}
        try:
            tokenizers = [Tokenizer(t.observation_size, t.action_size, **slots) for t in tasks]
        except ValueError as e:
            raise ConfigError(f"model: {e}") from None
        return from_dict(TDMConfig, {**self.model, **slots, "vocab_size": tokenizers[0].vocab_size,
                                     "step_tokens": tokenizers[0].local_size}, where="model")

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
        for key in ("task", "tasks", "data_dir", "extra_data_dirs", "collect", "collect_episodes"):
            if key in raw:
                raise ConfigError(f"{path}: {key} comes from {base_path} (data_from); remove it here")
            if key in base:
                raw[key] = base[key]
    config = from_dict(PipelineConfig, raw, where=path)
    for task, _ in config.collected:
        config.collect_config(task)
    config.model_config()
    config.train_config()
    config.export_config()
    return config
