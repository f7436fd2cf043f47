"""Baseline MLPs: trained by the same pipeline on the same data, exported, answering Dynamics.rollout."""

import os

import numpy as np
import pytest

from tdm_control.config import ConfigError
from tdm_control.dynamics import make_dynamics
from tdm_control.dynamics.onnx_mlp import OnnxMLP
from tdm_control.history import History
from training.baselines import export_baseline, train_baseline
from training.pipeline import load_pipeline
from training.train import CHECKPOINT

BASELINE = """
data_from: pipeline.yaml
kind: {kind}
run_dir: {root}/run_{kind}
model_path: {root}/{kind}.onnx
model: {{hidden: 64, layers: 2, embed_dim: 8}}
train: {{batch_size: 64, max_steps: 150, eval_every: 150, checkpoint_every: 150, warmup_steps: 10,
        learning_rate: 0.003, validation_fraction: 0.2, threads: 1}}
"""


@pytest.mark.parametrize("kind", ["mlp_delta", "mlp_tokenized"])
def test_baseline_trains_exports_and_predicts(tiny_pipeline, tasks, kind):
    tdm_pipeline, tdm_path = tiny_pipeline
    root = os.path.dirname(tdm_path)
    path = os.path.join(root, f"{kind}.yaml")
    with open(path, "w") as f:
        f.write(BASELINE.format(kind=kind, root=root))
    pipeline = load_pipeline(path)
    # The baseline reads the TDM's data: same task, folder and data policy.
    assert pipeline.data_dir == tdm_pipeline.data_dir and pipeline.collect == tdm_pipeline.collect
    metrics = train_baseline(pipeline.data_dir, pipeline.run_dir, pipeline.model_config(), pipeline.train_config(),
                             show_progress=False)
    # Normalised targets: predicting the mean scores 1.0; the trained model must beat that.
    assert metrics["val_loss"] < 0.9
    report = export_baseline(os.path.join(pipeline.run_dir, CHECKPOINT), pipeline.model_path)
    assert report["max_output_delta"] < 1e-4
    model = make_dynamics(pipeline.model_path, tasks["cartpole_swingup"])
    assert isinstance(model, OnnxMLP) and model.name == kind and model.metadata["kind"] == kind
    obs = np.array([0.0, -1.0, 0.0, 0.0, 0.0])
    actions = np.random.default_rng(0).uniform(-1, 1, (4, 6, 1))
    pred_obs, pred_reward = model.rollout(History(0), obs, actions)
    assert pred_obs.shape == (4, 6, 5) and pred_reward.shape == (4, 6)
    assert np.all(np.isfinite(pred_obs))
    with pytest.raises(ConfigError, match="made for task 'cartpole_swingup'"):
        make_dynamics(pipeline.model_path, tasks["cheetah_run"])


def test_pipeline_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: cartpole_swingup\ndata_dir: d\nrun_dir: r\nmodel_path: m.onnx\nmodel: {d_modle: 8}\n")
    with pytest.raises(ConfigError, match="d_modle.*did you mean 'd_model'"):
        load_pipeline(str(bad))
    bad.write_text("task: cartpole_swingup\ndata_dir: d\nrun_dir: r\nmodel_path: m.onnx\nkind: lstm\n")
    with pytest.raises(ConfigError, match="unknown model kind 'lstm'"):
        load_pipeline(str(bad))
    bad.write_text("task: cartpole_swingup\ndata_dir: d\nrun_dir: r\nmodel_path: m.onnx\nmodel: {step_tokens: 8}\n")
    with pytest.raises(ConfigError, match="follows from the task"):
        load_pipeline(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        load_pipeline(str(tmp_path / "missing.yaml"))
