"""Data collection, the training loop (loss falls, resume, DDP) on a tiny generated dataset."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from tdm_control.tokenizer import Role, Tokenizer
from training.collect import collect
from training.dataset import load_dataset, read_metadata, tokenize_episode
from training.train import CHECKPOINT, evaluate_loss, load_checkpoint, prepare_data, train


def test_dataset_records_task_layout_and_policy(tiny_pipeline, tasks):
    pipeline, _ = tiny_pipeline
    meta, episodes = load_dataset(pipeline.data_dir)
    task = tasks["cartpole_swingup"]
    assert meta["task"]["joint_names"] == list(task.joint_names)
    assert meta["task"]["observation_layout"] == [["position", 3], ["velocity", 2]]
    assert meta["task"]["control_timestep"] == 0.01
    assert meta["collect"]["planner"] == "warm_start" and len(meta["collect"]["mixes"]) == 3
    assert len(episodes) == 6
    for e in episodes:
        assert e.observations.shape == (121, 5) and e.actions.shape == (120, 1) and e.rewards.shape == (121,)
        assert e.rewards[0] == 0.0 and np.all((e.rewards >= 0) & (e.rewards <= 1))
        assert np.all(np.abs(e.actions) <= 1) and set(np.unique(e.policy)) <= {0, 1}
        # The recorded observations are the task's observations of the simulator's states.
        assert np.all(np.abs(e.observations[:, 1] ** 2 + e.observations[:, 2] ** 2 - 1) < 1e-9)
    # Both behaviours appear in the data.
    assert {0, 1} <= set(np.concatenate([e.policy for e in episodes]).tolist())


def test_stats_summarize_returns_by_policy_and_success(tiny_pipeline, capsys):
    from training.cli import main
    from training.dataset import lost_and_recovered, summarize_dataset

    pipeline, config_path = tiny_pipeline
    _, episodes = load_dataset(pipeline.data_dir)
    stats = summarize_dataset(pipeline.data_dir, success_reward=0.5)
    assert stats["episodes"] == 6 and stats["dataset_steps"] == 6 * 120
    assert sum(g["count"] for g in stats["by_policy"]) == 6
    rewards = np.concatenate([e.rewards[1:] for e in episodes])
    assert stats["success_share"] == pytest.approx(np.mean(rewards >= 0.5))
    assert stats["return_mean"] == pytest.approx(np.mean([e.episode_return for e in episodes]))
    lost = [lost_and_recovered(e.rewards[1:], 0.5, 0.25) for e in episodes]
    stats = summarize_dataset(pipeline.data_dir, success_reward=0.5, lost_reward=0.25)
    assert (stats["lost_episodes"], stats["recovered_episodes"]) == (sum(a for a, _ in lost), sum(b for _, b in lost))
    assert main(["stats", "--config", config_path]) == 0
    assert "6 episodes" in capsys.readouterr().out


@pytest.mark.parametrize("rewards, expected", [
    ([0.1, 0.2, 0.3], (False, False)),        # never succeeds: nothing to lose
    ([0.1, 0.95, 0.97, 0.6], (False, False)),  # dips, but not below the lost level
    ([0.95, 0.2, 0.1], (True, False)),        # falls and stays down
    ([0.2, 0.95, 0.3, 0.6, 0.92], (True, True)),  # falls and gets up again
    ([0.3, 0.1, 0.95], (False, False)),       # low before its first success is not a loss
])
def test_lost_and_recovered_episodes(rewards, expected):
    from training.dataset import lost_and_recovered

    assert lost_and_recovered(np.array(rewards), 0.9, 0.5) == expected


def test_collection_appends_and_refuses_another_policy(tiny_pipeline, tmp_path):
    pipeline, _ = tiny_pipeline
    folder = str(tmp_path / "data")
    config = dataclasses.replace(pipeline.collect_config(), episodes=1, steps=30)
    assert collect(config, folder, show_progress=False) == [0]
    first = load_dataset(folder)[1][0]
    assert collect(dataclasses.replace(config, episodes=2), folder, show_progress=False) == [1]
    assert collect(dataclasses.replace(config, episodes=2), folder, show_progress=False) == []
    again = load_dataset(folder)[1][0]
    np.testing.assert_array_equal(first.observations, again.observations)  # kept, not redrawn
    with pytest.raises(ValueError, match="another task or data policy"):
        collect(dataclasses.replace(config, segment_steps=7), folder, show_progress=False)
    assert read_metadata(folder)["collect"]["segment_steps"] == 20


def test_loss_masks_select_dynamics_and_imitation_targets(tiny_pipeline):
    pipeline, _ = tiny_pipeline
    _, episodes = load_dataset(pipeline.data_dir)
    tok = Tokenizer(5, 1)
    e = episodes[0]
    t = tokenize_episode(tok, e, {0: 0.0, 1: 1.0})
    roles = tok.roles()[t.local]
    assert len(t.tokens) == len(e) * 8 + 6
    assert np.all(t.weight[(roles == Role.OBSERVATION) | (roles == Role.REWARD)] == 1.0)
    assert np.all(t.weight[roles == Role.SEPARATOR] == 0.0)
    action_weights = t.weight[roles == Role.ACTION]
    np.testing.assert_array_equal(action_weights, (e.policy == 1).astype(np.float32))


@pytest.mark.parametrize("lead, expected", [
    (3, [2, 3, 4]),  # from step 1 (up) the drop at step 4 is 3 ahead: the way down from step 2 on
    (2, [3, 4]),     # only step 2 (up) is within 2 steps of it
    (1, []),         # nothing up is 1 step before a drop
])
def test_falling_steps_mark_the_way_from_success_to_a_loss(lead, expected):
    from training.dataset import falling_steps

    rewards = np.array([0.0, 0.95, 0.95, 0.8, 0.4, 0.3, 0.95, 0.95, 0.95])  # (T + 1,)
    np.testing.assert_array_equal(np.flatnonzero(falling_steps(rewards, lead)), expected)


def test_fall_weight_weighs_the_dynamics_targets_of_falling_steps(tiny_pipeline):
    from training.dataset import falling_steps
    from training.train import TrainConfig, dynamics_weights

    pipeline, _ = tiny_pipeline
    _, episodes = load_dataset(pipeline.data_dir)
    tok = Tokenizer(5, 1)
    e = episodes[0]
    e.rewards[:] = 0.95
    e.rewards[len(e) // 2:] = 0.1  # one drop halfway through
    config = TrainConfig(fall_weight=4.0, fall_lead_steps=5)
    falling = falling_steps(e.rewards, 5)
    assert falling.sum() == 5
    t = tokenize_episode(tok, e, {0: 0.0, 1: 1.0}, dynamics_weights(e, config))
    roles = tok.roles()[t.local]
    step = np.arange(len(t.tokens)) // tok.step_tokens
    dynamics = (roles == Role.OBSERVATION) | (roles == Role.REWARD)
    np.testing.assert_array_equal(t.weight[dynamics], np.where(falling[step[dynamics]], 4.0, 1.0))
    plain = tokenize_episode(tok, e, {0: 0.0, 1: 1.0})
    np.testing.assert_array_equal(t.weight[~dynamics], plain.weight[~dynamics])  # actions, separators
    assert dynamics_weights(e, TrainConfig()) == 1.0
    with pytest.raises(Exception, match="fall_weight"):
        TrainConfig(fall_weight=-1.0)


def test_a_tiny_model_learns(tiny_model):
    pipeline, _, _ = tiny_model
    checkpoint = load_checkpoint(os.path.join(pipeline.run_dir, CHECKPOINT))
    from training.model import TDM

    data = prepare_data(pipeline.data_dir, pipeline.train_config(), pipeline.model_config())
    torch.manual_seed(0)
    untrained = evaluate_loss(TDM(pipeline.model_config()), data.validation, torch.device("cpu"))
    trained = checkpoint["metrics"]
    assert checkpoint["step"] == 40
    assert untrained["loss"] > 6.5  # about ln(1025): uniform guesses
    assert trained["val_loss"] < untrained["loss"] - 0.4  # well beyond noise: 0.7 nats seen
    assert checkpoint["tokenizer"]["bins"] == 1024 and checkpoint["model_config"]["context_tokens"] == 24


def test_loss_command_scores_checkpoints_on_one_pipelines_windows(tiny_model, tiny_pipeline, tmp_path, capsys):
    """`tdm-train loss`: a run's checkpoint on its own pipeline's windows gives the run's last
    validation loss; a missing, baseline or other-task checkpoint is an error with exit 2."""
    from training.cli import main
    from training.train import checkpoint_losses

    pipeline, _, _ = tiny_model
    path = os.path.join(pipeline.run_dir, CHECKPOINT)
    (row,) = checkpoint_losses([path], pipeline.data_dirs, pipeline.train_config(), pipeline.model_config())
    metrics = load_checkpoint(path)["metrics"]
    assert row["step"] == 40
    for key in ("loss", "observation", "reward", "action"):  # training logs None for a role without targets too
        logged = metrics[f"val_{key}"]
        assert row[key] == (None if logged is None else pytest.approx(logged, rel=1e-5))
    # A role the windows hold no target of is None, not 0: here actions, with and without targets.
    for weight, has_targets in ((0.0, False), (1.0, True)):
        config = dataclasses.replace(pipeline.train_config(), action_weight=weight, brownian_action_weight=weight)
        (row,) = checkpoint_losses([path], pipeline.data_dirs, config, pipeline.model_config())
        assert (row["action"] is not None) == has_targets
        assert row["observation"] == pytest.approx(metrics["val_observation"], rel=1e-5)
    _, config_path = tiny_pipeline
    assert main(["loss", "--config", config_path, "--checkpoint", path]) == 0
    assert f"(step 40): loss {metrics['val_loss']:.4f}" in capsys.readouterr().out
    other = load_checkpoint(path)
    other["task"] = {**other["task"], "task": "walker_stand"}
    torch.save(other, tmp_path / "other.pt")
    baseline = {k: v for k, v in load_checkpoint(path).items() if k != "tokenizer"}
    torch.save(baseline, tmp_path / "baseline.pt")
    for bad, message in ((tmp_path / "missing.pt", "no checkpoint at"), (tmp_path / "other.pt", "'walker_stand'"),
                         (tmp_path / "baseline.pt", "not a TDM checkpoint")):
        assert main(["loss", "--config", config_path, "--checkpoint", str(bad)]) == 2
        assert message in capsys.readouterr().err


def test_resume_continues_the_same_run(tiny_pipeline, tmp_path):
    pipeline, _ = tiny_pipeline
    model_config = pipeline.model_config()
    config = dataclasses.replace(pipeline.train_config(), max_steps=12, eval_every=6, checkpoint_every=6)
    straight, interrupted = str(tmp_path / "straight"), str(tmp_path / "interrupted")
    train(pipeline.data_dir, straight, model_config, config, show_progress=False)
    train(pipeline.data_dir, interrupted, model_config, config, show_progress=False, stop_after=5)
    assert load_checkpoint(os.path.join(interrupted, CHECKPOINT))["step"] == 5
    train(pipeline.data_dir, interrupted, model_config, config, show_progress=False)
    a = load_checkpoint(os.path.join(straight, CHECKPOINT))
    b = load_checkpoint(os.path.join(interrupted, CHECKPOINT))
    assert a["step"] == b["step"] == 12
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    # A different schedule must not silently continue this run.
    with pytest.raises(ValueError, match="another schedule"):
        train(pipeline.data_dir, interrupted, model_config, dataclasses.replace(config, learning_rate=0.1),
              show_progress=False)


def test_fine_tuning_starts_from_another_runs_weights(tiny_pipeline, tmp_path):
    pipeline, _ = tiny_pipeline
    model_config = pipeline.model_config()
    config = dataclasses.replace(pipeline.train_config(), max_steps=4, eval_every=4, checkpoint_every=4)
    base = str(tmp_path / "base")
    train(pipeline.data_dir, base, model_config, config, show_progress=False)
    base_ckpt = os.path.join(base, CHECKPOINT)
    # At learning rate 0 the fine-tuned run must keep exactly the weights it started from.
    frozen = dataclasses.replace(config, learning_rate=0.0, min_learning_rate=0.0, init_from=base_ckpt)
    train(pipeline.data_dir, str(tmp_path / "tuned"), model_config, frozen, show_progress=False)
    a = load_checkpoint(base_ckpt)["model"]
    b = load_checkpoint(os.path.join(tmp_path / "tuned", CHECKPOINT))["model"]
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name
    fresh = dataclasses.replace(frozen, init_from=None)
    train(pipeline.data_dir, str(tmp_path / "fresh"), model_config, dataclasses.replace(fresh, seed=1),
          show_progress=False)
    c = load_checkpoint(os.path.join(tmp_path / "fresh", CHECKPOINT))["model"]
    assert any(not torch.equal(a[name], c[name]) for name in a)
    with pytest.raises(ValueError, match="another model config .*d_model"):
        train(pipeline.data_dir, str(tmp_path / "wide"), dataclasses.replace(model_config, d_model=48), frozen,
              show_progress=False)
    other = load_checkpoint(base_ckpt)
    other["task"] = {**other["task"], "task": "walker_stand"}
    torch.save(other, tmp_path / "walker.pt")
    with pytest.raises(ValueError, match="trained on task 'walker_stand', this dataset is 'cartpole_swingup'"):
        train(pipeline.data_dir, str(tmp_path / "other"), model_config,
              dataclasses.replace(frozen, init_from=str(tmp_path / "walker.pt")), show_progress=False)
    with pytest.raises(ValueError, match="no checkpoint at"):
        train(pipeline.data_dir, str(tmp_path / "missing"), model_config,
              dataclasses.replace(frozen, init_from=str(tmp_path / "nowhere.pt")), show_progress=False)


def test_fit_command_reports_a_missing_init_checkpoint(tiny_pipeline, tmp_path, capsys):
    from training.cli import main

    _, config_path = tiny_pipeline
    config = yaml.safe_load(open(config_path))
    config["run_dir"] = str(tmp_path / "run")
    config["train"]["init_from"] = str(tmp_path / "nowhere.pt")
    path = tmp_path / "fine_tune.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "train.init_from: no checkpoint at" in err and "nowhere.pt" in err


def test_train_command_keeps_tracebacks_of_errors_not_its_own(tiny_pipeline, monkeypatch):
    """Only the training package's own errors (which say what to do) become one line and exit 2."""
    import training.train
    from training.cli import main

    def broken(*args, **kwargs):
        raise ValueError("a library's internal error")

    monkeypatch.setattr(training.train, "train", broken)
    with pytest.raises(ValueError, match="internal error"):
        main(["fit", "--config", tiny_pipeline[1], "--no-progress"])


def test_data_parallel_training_with_two_processes(tiny_pipeline, tmp_path):
    pipeline, config_path = tiny_pipeline
    text = open(config_path).read().replace(pipeline.run_dir, str(tmp_path / "ddp"))
    ddp_config = tmp_path / "ddp.yaml"
    ddp_config.write_text(text)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "training.cli", "fit", "--config", str(ddp_config), "--max-steps", "20", "--no-progress"],
        capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = load_checkpoint(str(tmp_path / "ddp" / CHECKPOINT))
    assert checkpoint["world_size"] == 2 and checkpoint["step"] == 20
    assert checkpoint["metrics"]["val_loss"] < 6.5
    printed = [line for line in result.stdout.splitlines() if line.startswith("trained:")]
    assert len(printed) == 1  # rank 0 alone reports
    assert json.loads(printed[0][len("trained:"):])["step"] == 20


def test_collection_with_action_repeat_records_held_steps(tiny_pipeline, tmp_path):
    pipeline, _ = tiny_pipeline
    config = dataclasses.replace(pipeline.collect_config(), episodes=1, steps=40, action_repeat=4, segment_steps=5)
    collect(config, str(tmp_path / "repeat"), show_progress=False)
    meta, (episode,) = load_dataset(str(tmp_path / "repeat"))
    assert meta["collect"]["action_repeat"] == 4
    assert episode.actions.shape == (10, 1) and episode.observations.shape == (11, 5)
    # The per-control-step return is kept: at least the sum of the rewards seen on arrival.
    assert episode.episode_return >= episode.rewards.sum() - 1e-9
    with pytest.raises(Exception, match="whole number"):
        dataclasses.replace(config, steps=42)


def test_training_pools_folders_of_one_task_and_refuses_others(tiny_pipeline, tmp_path):
    from training.dataset import load_datasets
    from training.pipeline import load_pipeline

    pipeline, config_path = tiny_pipeline
    more = str(tmp_path / "more")
    config = dataclasses.replace(pipeline.collect_config(), episodes=2, steps=40, seed=7)
    collect(config, more, show_progress=False)
    # A second pipeline trains on the tiny data plus the new folder, and so does one taking its data from it.
    raw = yaml.safe_load(open(config_path))
    pooled_path = tmp_path / "pooled.yaml"
    pooled_path.write_text(yaml.safe_dump({**raw, "extra_data_dirs": [more], "run_dir": str(tmp_path / "run")}))
    pooled = load_pipeline(str(pooled_path))
    assert pooled.data_dirs == [pipeline.data_dir, more]
    (tmp_path / "baseline.yaml").write_text(yaml.safe_dump(
        {"data_from": "pooled.yaml", "kind": "mlp_delta", "run_dir": "r", "model_path": "m.onnx"}))
    assert load_pipeline(str(tmp_path / "baseline.yaml")).data_dirs == pooled.data_dirs
    meta, episodes = load_datasets(pooled.data_dirs)
    assert len(episodes) == 6 + 2 and [len(e) for e in episodes[6:]] == [40, 40]
    train(pooled.data_dirs, pooled.run_dir, pooled.model_config(), pooled.train_config(), show_progress=False,
          stop_after=2)
    checkpoint = load_checkpoint(os.path.join(pooled.run_dir, CHECKPOINT))
    assert checkpoint["dataset_episodes"] == 8
    assert checkpoint["dataset_dirs"] == [os.path.abspath(pipeline.data_dir), os.path.abspath(more)]
    assert checkpoint["dataset_hash"] != prepare_data(pipeline.data_dir, pooled.train_config(),
                                                      pooled.model_config()).data_hash
    # Folders of another dataset step or task, or the same folder twice, are refused with the reason.
    repeat = str(tmp_path / "repeat")
    collect(dataclasses.replace(config, episodes=1, action_repeat=4, segment_steps=5), repeat, show_progress=False)
    with pytest.raises(ValueError, match="collect.action_repeat"):
        load_datasets([pipeline.data_dir, repeat])
    walker = str(tmp_path / "walker")
    collect(dataclasses.replace(config, task="walker_stand", episodes=1, steps=4), walker, show_progress=False)
    with pytest.raises(ValueError, match="'walker_stand' data"):
        load_datasets([pipeline.data_dir, walker])
    pooled_path.write_text(yaml.safe_dump({**raw, "extra_data_dirs": [more, pipeline.data_dir + "/"]}))
    with pytest.raises(Exception, match="extra_data_dirs: names a folder twice"):
        load_pipeline(str(pooled_path))


def test_on_policy_collection_plans_with_an_exported_model(tiny_model, walker_model, tmp_path):
    """`collect.model`: the model's own planner drives the MPC segments; its actions are labelled
    `model_mpc` (dynamics targets, never behaviour cloning); the folder belongs to that model file."""
    import hashlib
    import shutil

    from training.dataset import POLICIES

    pipeline, model_path, _ = tiny_model
    own = str(tmp_path / "own.onnx")
    shutil.copy(model_path, own)
    config = dataclasses.replace(pipeline.collect_config(), episodes=1, steps=24, segment_steps=6, model=own,
                                 planner="proposal", planner_params={"samples": 4, "horizon": 3},
                                 mixes=({"mpc_share": 0.5, "action_noise": 0.1},), seed=3)
    folder = str(tmp_path / "on_policy")
    collect(config, folder, show_progress=False)
    meta, (episode,) = load_dataset(folder)
    assert POLICIES[2] == "model_mpc" and set(np.unique(episode.policy).tolist()) == {0, 2}
    assert meta["model_sha256"] == hashlib.sha256(open(own, "rb").read()).hexdigest()
    # A pure function of (config, index), like ground-truth collection.
    collect(config, str(tmp_path / "again"), show_progress=False)
    _, (again,) = load_dataset(str(tmp_path / "again"))
    assert np.array_equal(again.observations, episode.observations) and np.array_equal(again.actions, episode.actions)
    # Its actions are never behaviour-cloning targets; the ground-truth planner's are.
    tokenizer = Tokenizer(5, 1)

    def action_weights(e):  # (T,) loss weight of each step's action token
        return tokenize_episode(tokenizer, e, {0: 0.0, 1: 1.0}).weight[:len(e) * tokenizer.step_tokens] \
            .reshape(len(e), -1)[:, -1]

    assert not action_weights(episode).any()
    relabelled = dataclasses.replace(episode, policy=np.where(episode.policy == 2, 1, 0).astype(np.int8))
    assert np.array_equal(action_weights(relabelled) > 0, episode.policy == 2)
    # The folder is refused once the model file changes, and a model for another task before any work.
    import onnx

    from tdm_control.dynamics import metadata as model_metadata
    from training.export import write_metadata

    proto = onnx.load(own)
    proto.doc_string = "retrained"  # the same model file, another version (exported with its own digest)
    onnx.save(proto, own)
    write_metadata(own, model_metadata.decode(
        {p.key: p.value for p in proto.metadata_props}[model_metadata.METADATA_KEY], own))
    with pytest.raises(ValueError, match="another version of"):
        collect(dataclasses.replace(config, episodes=2), folder, show_progress=False)
    with pytest.raises(Exception, match="walker_stand"):
        collect(dataclasses.replace(config, model=walker_model), str(tmp_path / "never"), show_progress=False)
    assert not os.path.exists(tmp_path / "never")
    with pytest.raises(Exception, match="exported .onnx"):
        dataclasses.replace(config, model="models/tdm.pt")


def test_folder_weights_set_each_folders_share_of_windows():
    from training.dataset import TokenizedEpisode, WindowSampler
    from training.errors import TrainingError
    from training.train import TrainConfig, folder_shares

    def episode(length, value):
        zeros = np.zeros(length, dtype=np.int64)
        return TokenizedEpisode(np.full(length, value), zeros, np.ones(length, np.float32), zeros)

    # Folder 0 holds 3 long episodes (301 tokens each), folder 1 one short one (101 tokens).
    episodes = [episode(301, 0), episode(301, 0), episode(301, 0), episode(101, 1)]
    sources, lengths = [0, 0, 0, 1], [301, 301, 301, 101]

    def share_of_folder_1(weights):
        sampler = WindowSampler(episodes, 10, seed=0, weights=weights)
        tokens = np.concatenate([sampler.batch(64, step)[0][:, 0] for step in range(40)])
        return np.mean(tokens == 1)

    assert folder_shares(sources, lengths, None, 2) is None
    assert share_of_folder_1(None) == pytest.approx(90 / (3 * 290 + 90), abs=0.03)  # by size: ~9%
    assert share_of_folder_1(folder_shares(sources, lengths, [1, 1], 2)) == pytest.approx(0.5, abs=0.04)
    assert share_of_folder_1(folder_shares(sources, lengths, [3, 1], 2)) == pytest.approx(0.25, abs=0.04)
    with pytest.raises(TrainingError, match="2 shares for 3 dataset folders"):
        folder_shares(sources, lengths, [1, 1], 3)
    with pytest.raises(Exception, match="folder_weights"):
        TrainConfig(folder_weights=(0.0, 0.0))
