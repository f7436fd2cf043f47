"""Export parity, model metadata checks, and the exported TDM planning in ONNX Runtime."""

import os
import shutil

import numpy as np
import onnx
import pytest

from tdm_control.config import ConfigError
from tdm_control.dynamics import make_dynamics
from tdm_control.dynamics import metadata as model_metadata
from tdm_control.dynamics.onnx_model import OnnxTDM
from tdm_control.evaluation.episodes import EvalConfig, evaluate
from tdm_control.history import History
from training.export import ExportError, export_graph, parity_check, write_metadata
from training.model import TDM
from training.train import CHECKPOINT, load_checkpoint, model_from_checkpoint


def test_export_passes_its_parity_check(tiny_model):
    _, path, report = tiny_model
    assert report["max_logit_delta"] < 1e-4
    assert report["greedy_mismatches"] == 0 and report["greedy_tokens_compared"] > 100
    assert os.path.getsize(path) < 2_000_000


def test_exporting_a_checkpoint_again_gives_the_same_bytes(tiny_model, tmp_path):
    """A shipped model is remade exactly from its checkpoint (reviewers can diff the file)."""
    from training.export import export

    pipeline, path, _ = tiny_model
    again = str(tmp_path / "again.onnx")
    export(os.path.join(pipeline.run_dir, CHECKPOINT), again, pipeline.export_config())
    with open(path, "rb") as a, open(again, "rb") as b:
        assert a.read() == b.read()


def test_parity_check_catches_a_graph_that_is_not_the_model(tiny_model, tmp_path):
    pipeline, _, _ = tiny_model
    checkpoint = load_checkpoint(os.path.join(pipeline.run_dir, CHECKPOINT))
    model = model_from_checkpoint(checkpoint)
    other = TDM(model.config).eval()  # same shape, fresh weights
    path = str(tmp_path / "other.onnx")
    export_graph(other, path, opset=18)
    from tdm_control.tokenizer import Tokenizer

    with pytest.raises(ExportError, match="logits differ"):
        parity_check(model, path, Tokenizer(5, 1), checkpoint["dataset_dir"], pipeline.export_config())


def test_metadata_describes_the_model(tiny_model, tasks):
    _, path, _ = tiny_model
    proto = onnx.load(path)
    meta = model_metadata.decode({p.key: p.value for p in proto.metadata_props}[model_metadata.METADATA_KEY], path)
    task = tasks["cartpole_swingup"]
    assert meta["task"] == "cartpole_swingup"
    assert meta["joint_names"] == list(task.joint_names)
    assert meta["observation_size"] == 5 and meta["action_size"] == 1
    assert meta["tokenizer"]["mu"] == 100 and meta["tokenizer"]["max_value"] == 256
    assert meta["tokenizer"]["bins"] == 1024 and meta["context_tokens"] == 24
    assert meta["step_layout"] == ["observation"] * 5 + ["reward", "separator", "action"]
    assert len(meta["dataset_hash"]) == 64


def test_a_model_for_another_task_is_refused_with_the_differences(tiny_model, tasks):
    _, path, _ = tiny_model
    with pytest.raises(ConfigError) as error:
        make_dynamics(path, tasks["walker_stand"])
    message = str(error.value)
    assert "made for task 'cartpole_swingup', not 'walker_stand'" in message
    assert "observation_size: model has 5, task needs 24" in message
    assert "joint_names" in message and "action_size" in message


def test_files_that_are_not_tdm_models_are_refused(tiny_model, tasks, tmp_path):
    _, path, _ = tiny_model
    task = tasks["cartpole_swingup"]
    with pytest.raises(ConfigError, match="does not exist"):
        OnnxTDM(str(tmp_path / "missing.onnx"), task)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a loadable ONNX model"):
        OnnxTDM(str(garbage), task)
    bare = str(tmp_path / "bare.onnx")
    proto = onnx.load(path)
    del proto.metadata_props[:]
    onnx.save(proto, bare)
    with pytest.raises(ConfigError, match="not a model exported by tdm_control"):
        OnnxTDM(bare, task)
    tampered = str(tmp_path / "tampered.onnx")
    write_metadata(bare, {"format_version": 99})
    os.replace(bare, tampered)
    with pytest.raises(ConfigError, match="re-export"):
        OnnxTDM(tampered, task)


def test_onnx_tdm_rollout_shapes_history_and_proposals(tiny_model, tasks):
    _, path, _ = tiny_model
    task = tasks["cartpole_swingup"]
    model = OnnxTDM(path, task, device="cpu")
    assert model.providers == ["CPUExecutionProvider"]
    assert model.history_steps == (24 - 6) // 8
    history = History(model.history_steps)
    obs = np.array([0.0, -1.0, 0.0, 0.0, 0.0])
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 7, 1))
    pred_obs, pred_reward = model.rollout(history, obs, actions)
    assert pred_obs.shape == (5, 7, 5) and pred_reward.shape == (5, 7)
    assert np.all(np.isfinite(pred_obs)) and np.all(np.isfinite(pred_reward))
    # Deterministic (greedy), and the same candidate gives the same prediction in any batch.
    again = model.rollout(history, obs, actions[2:3])
    np.testing.assert_array_equal(again[0][0], pred_obs[2])
    # History beyond the window is dropped: only the last steps condition the prediction.
    for t in range(6):
        history.append(obs + t, 0.1 * t, np.array([0.5]))
    long_history = History(100)
    for t in range(6):
        long_history.append(obs + t, 0.1 * t, np.array([0.5]))
    np.testing.assert_array_equal(model.rollout(history, obs, actions)[0], model.rollout(long_history, obs, actions)[0])
    proposal = model.propose(history, obs)
    assert proposal.shape == (1,) and -1 <= proposal[0] <= 1


def test_onnx_tdm_drives_the_planner_for_a_short_episode(tiny_model):
    _, path, _ = tiny_model
    for planner in ("random_shooting", "warm_start"):
        result = evaluate(EvalConfig(task="cartpole_swingup", model=path, planner=planner,
                                     planner_params={"samples": 8, "horizon": 4}, episodes=1, steps=12, seed=1),
                          show_progress=False)
        assert result["steps"] == 12 and 0.0 <= result["returns"][0] <= 12.0
        assert result["latency_median_s"] > 0


def test_proposal_rollouts_agree_with_plain_rollouts_of_the_same_actions(tiny_model, tasks):
    _, path, _ = tiny_model
    model = OnnxTDM(path, tasks["cartpole_swingup"], device="cpu")
    history = History(model.history_steps)
    obs = np.array([0.1, -0.9, 0.3, 0.2, -0.5])
    noise = np.random.default_rng(3).normal(0, 0.3, (6, 5, 1))
    noise[0] = 0.0
    pred_obs, pred_reward, actions = model.rollout_with_proposals(history, obs, noise)
    assert actions.shape == (6, 5, 1) and np.all(np.abs(actions) <= 1)
    # Candidate 0 follows the proposals exactly: its first action is the model's proposal.
    np.testing.assert_allclose(actions[0, 0], model.propose(history, obs))
    # Feeding the same actions to the plain rollout predicts the same trajectories.
    again_obs, again_reward = model.rollout(history, obs, actions)
    np.testing.assert_array_equal(again_obs, pred_obs)
    np.testing.assert_array_equal(again_reward, pred_reward)
    result = evaluate(EvalConfig(task="cartpole_swingup", model=path, planner="proposal",
                                 planner_params={"samples": 8, "horizon": 4}, episodes=1, steps=10, seed=1),
                      show_progress=False)
    assert result["steps"] == 10 and 0.0 <= result["returns"][0] <= 10.0


def test_an_exported_model_plans_only_at_its_own_action_repeat(tiny_model, tasks):
    _, path, _ = tiny_model
    model = make_dynamics(path, tasks["cartpole_swingup"])
    assert model.action_repeat == 1 and model.metadata["action_repeat"] == 1
    with pytest.raises(ConfigError, match="trained with action_repeat 1"):
        make_dynamics(path, tasks["cartpole_swingup"], action_repeat=2)


def test_a_relative_model_path_is_found_from_any_working_directory(tiny_model, tasks, tmp_path, monkeypatch):
    """`ros2 launch` runs nodes outside the source tree; config files name models relative to the package."""
    from tdm_control import dynamics

    _, path, _ = tiny_model
    package_root = tmp_path / "share"
    (package_root / "models").mkdir(parents=True)
    shutil.copy(path, package_root / "models" / "tiny.onnx")
    monkeypatch.setattr(dynamics, "model_search_dirs", lambda: [package_root])
    monkeypatch.chdir(tmp_path)
    model = make_dynamics("models/tiny.onnx", tasks["cartpole_swingup"])
    assert model.path == str(package_root / "models" / "tiny.onnx")
    with pytest.raises(ConfigError) as error:
        make_dynamics("models/absent.onnx", tasks["cartpole_swingup"])
    assert "not found; looked in" in str(error.value)
    assert str(package_root / "models" / "absent.onnx") in str(error.value)
