"""Shared fixtures: tasks are built once per session; one tiny TDM is collected, trained and exported."""

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "disable")
# Every DDS participant the tests start, in this process or a child, discovers on loopback only: no test
# sends discovery traffic to the network (ROS 2 Jazzy's default range, SUBNET, multicasts on it).
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="session")
def tasks():
    from tdm_control.tasks import TASKS, make_task

    return {name: make_task(name) for name in TASKS}


TINY_PIPELINE = """
task: cartpole_swingup
data_dir: {root}/data
run_dir: {root}/run
model_path: {root}/tiny_cartpole.onnx
collect:
  episodes: 6
  steps: 120
  segment_steps: 20
  workers: 1
  planner_params: {{samples: 8, horizon: 8}}
model: {{d_model: 32, n_layers: 2, n_heads: 2, d_ff: 64, context_tokens: 24}}
train: {{batch_size: 8, sequence_tokens: 48, max_steps: 40, eval_every: 20, checkpoint_every: 20,
        warmup_steps: 5, learning_rate: 0.003, validation_fraction: 0.2, threads: 1}}
"""


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """A tiny cartpole dataset and its pipeline config (no training yet)."""
    from training.collect import collect
    from training.pipeline import load_pipeline

    root = tmp_path_factory.mktemp("tiny")
    path = root / "pipeline.yaml"
    path.write_text(TINY_PIPELINE.format(root=root))
    pipeline = load_pipeline(str(path))
    collect(pipeline.collect_config(), pipeline.data_dir, show_progress=False)
    return pipeline, str(path)


@pytest.fixture(scope="session")
def tiny_model(tiny_pipeline):
    """The tiny pipeline trained for its 40 steps and exported: (pipeline, onnx path, export report)."""
    from training.export import export
    from training.train import CHECKPOINT, train

    pipeline, _ = tiny_pipeline
    train(pipeline.data_dir, pipeline.run_dir, pipeline.model_config(), pipeline.train_config(),
          show_progress=False)
    report = export(os.path.join(pipeline.run_dir, CHECKPOINT), pipeline.model_path, pipeline.export_config())
    return pipeline, pipeline.model_path, report


@pytest.fixture(scope="session")
def walker_model(tiny_model, tasks, tmp_path_factory):
    """An exported TDM whose metadata says it was made for walker_stand (the tiny cartpole graph, relabelled)."""
    import onnx

    from tdm_control.dynamics import metadata as model_metadata
    from training.export import write_metadata

    _, cartpole_path, _ = tiny_model
    proto = onnx.load(cartpole_path)
    meta = model_metadata.decode({p.key: p.value for p in proto.metadata_props}[model_metadata.METADATA_KEY],
                                 cartpole_path)
    meta.update({k: v for k, v in tasks["walker_stand"].describe().items() if k in model_metadata.TASK_FIELDS})
    path = str(tmp_path_factory.mktemp("walker") / "walker_stand_tdm.onnx")
    onnx.save(proto, path)
    write_metadata(path, meta)
    return path
