"""A generalist TDM: one model pretrained across tasks of different step layouts, fine-tuned or used as is."""

import dataclasses
import os
import sys

import numpy as np
import pytest
import torch

from tdm_control.config import ConfigError
from tdm_control.tokenizer import Role, Tokenizer
from training.train import CHECKPOINT, load_checkpoint, prepare_data, train

GENERALIST = """
tasks: [cartpole_swingup, cheetah_run]
data_dir: {root}/data
run_dir: {root}/run
model_path: {root}/tiny_generalist.onnx
collect:
  episodes: 3
  steps: 60
  segment_steps: 10
  workers: 1
  mixes: [{{weight: 1.0, mpc_share: 0.0, action_noise: 0.0}}]
model: {{d_model: 32, n_layers: 2, n_heads: 2, d_ff: 64, context_tokens: 48}}
train: {{batch_size: 8, sequence_tokens: 64, max_steps: 30, eval_every: 15, checkpoint_every: 15,
        warmup_steps: 5, learning_rate: 0.003, validation_fraction: 0.34, threads: 1}}
"""
"""Cartpole (n = 5, m = 1) and cheetah (n = 17, m = 6): two layouts in one local-position table of 17 + 2 + 6."""


@pytest.fixture(scope="module")
def generalist(tmp_path_factory):
    """The tiny generalist collected (Brownian actions), trained and exported: (pipeline, export report)."""
    from training.collect import collect
    from training.export import export
    from training.pipeline import load_pipeline

    root = tmp_path_factory.mktemp("generalist")
    path = root / "pipeline.yaml"
    path.write_text(GENERALIST.format(root=root))
    pipeline = load_pipeline(str(path))
    for task, folder in pipeline.collected:
        collect(pipeline.collect_config(task), folder, show_progress=False)
    train(pipeline.data_dirs, pipeline.run_dir, pipeline.model_config(), pipeline.train_config(), show_progress=False,
          across_tasks=True)
    report = export(os.path.join(pipeline.run_dir, CHECKPOINT), pipeline.model_path,
                    dataclasses.replace(pipeline.export_config(), weights=True))
    return pipeline, report


def test_local_positions_name_what_a_token_stands_for_in_every_layout():
    specialist = Tokenizer(5, 1)
    np.testing.assert_array_equal(specialist.local, np.arange(8))  # a specialist: the place in the step
    assert specialist.local_size == specialist.step_tokens == 8
    small, large = Tokenizer(5, 1, observation_slots=17, action_slots=6), Tokenizer(17, 6, observation_slots=17,
                                                                                  action_slots=6)
    np.testing.assert_array_equal(small.local, [0, 1, 2, 3, 4, 17, 18, 19])
    np.testing.assert_array_equal(large.local, np.arange(25))
    assert small.local_size == large.local_size == 25
    for tok in (small, large):
        np.testing.assert_array_equal(tok.local_roles()[tok.local], tok.roles())  # role follows from local index
        np.testing.assert_array_equal(tok.local_positions(11, start=6), tok.local[np.arange(6, 17) % tok.step_tokens])
    assert Tokenizer.from_description(small.describe(), 3, 1).local.tolist() == [0, 1, 2, 17, 18, 19]
    legacy = {k: v for k, v in specialist.describe().items() if not k.endswith("_slots")}  # models before slots
    assert Tokenizer.from_description(legacy) == specialist
    with pytest.raises(ValueError, match="does not fit a model with 5 observation and 1 action places"):
        Tokenizer(17, 6, observation_slots=5, action_slots=1)


def test_pooled_layouts_batch_with_the_right_roles_targets_and_local_positions(generalist):
    pipeline, _ = generalist
    model_config = pipeline.model_config()
    assert (model_config.observation_slots, model_config.action_slots, model_config.step_tokens) == (17, 6, 25)
    with pytest.raises(ValueError, match="holds 'cheetah_run' data .* or pretrain a generalist"):
        prepare_data(pipeline.data_dirs, pipeline.train_config(), model_config)  # a specialist's pooling refuses
    data = prepare_data(pipeline.data_dirs, pipeline.train_config(), model_config, across_tasks=True)
    assert data.meta["task"]["task"] == "generalist"
    assert (data.tokenizer.observation_size, data.tokenizer.action_size) == (17, 6)  # the table's layout
    assert [e["task"] for e in data.meta["task"]["environments"]] == ["cartpole_swingup", "cheetah_run"]
    table = Tokenizer(17, 6, observation_slots=17, action_slots=6).local_roles()
    tokens, local, targets, weights, roles = data.train.batch(256, step=0)  # (B, C) each
    assert tokens.shape == local.shape == targets.shape == weights.shape == roles.shape == (256, 64)
    np.testing.assert_array_equal(targets[:, :-1], tokens[:, 1:])  # next-token targets
    np.testing.assert_array_equal(roles[:, :-1], table[local[:, 1:]])  # each target's role is its local index's
    np.testing.assert_array_equal(tokens == 1024, local == 18)  # separators exactly at the separator's place
    assert np.all(weights[roles == Role.SEPARATOR] == 0) and np.all(weights[roles == Role.OBSERVATION] == 1)
    assert np.all(weights[roles == Role.ACTION] == 0)  # Brownian actions are no behaviour-cloning target
    pairs = {(a, b) for row in local for a, b in zip(row[:-1], row[1:])}
    assert (4, 17) in pairs and (16, 17) in pairs  # cartpole's 5th and cheetah's 17th observation, then reward
    assert (19, 0) in pairs and (24, 0) in pairs  # each layout's last action, then the next observation


def test_a_generalist_exports_with_parity_on_each_layout_and_lists_its_environments(generalist):
    from tdm_control.dynamics.onnx_model import open_model

    pipeline, report = generalist
    assert report["layouts"] == [[5, 1], [17, 6]]
    assert report["greedy_mismatches"] == 0 and report["max_logit_delta"] <= 2e-3
    from tdm_control.tasks import make_task

    _, meta = open_model(pipeline.model_path, make_task("cartpole_swingup"), device="cpu")
    assert meta["task"] == "generalist"
    assert [(e["task"], e["observation_size"], e["action_size"]) for e in meta["environments"]] == [
        ("cartpole_swingup", 5, 1), ("cheetah_run", 17, 6)]
    assert (meta["tokenizer"]["observation_slots"], meta["tokenizer"]["action_slots"]) == (17, 6)


@pytest.mark.parametrize("task", ["cartpole_swingup", "cheetah_run"])
def test_the_runtime_plans_with_a_generalist_for_a_task_of_each_layout(generalist, tasks, task):
    from tdm_control.dynamics.onnx_model import load_onnx_dynamics
    from tdm_control.history import History

    pipeline, _ = generalist
    model = load_onnx_dynamics(pipeline.model_path, tasks[task], device="cpu", shards=1)
    assert model.notes == (f"generalist model trained on 2 environments (cartpole_swingup, cheetah_run); {task} is "
                           "one of them",)
    n, m = tasks[task].observation_size, tasks[task].action_size
    obs, rewards = model.rollout(History(8), np.zeros(n), np.zeros((3, 4, m)))
    assert obs.shape == (3, 4, n) and rewards.shape == (3, 4) and np.isfinite(obs).all()
    _, _, actions = model.rollout_with_proposals(History(8), np.zeros(n), np.zeros((2, 2, m)))
    assert actions.shape == (2, 2, m)


def test_the_runtime_refuses_a_task_the_generalist_cannot_represent(generalist, tasks):
    from tdm_control.dynamics.onnx_model import load_onnx_dynamics

    pipeline, _ = generalist
    with pytest.raises(ConfigError, match=r"places for 17 observations and 6 actions per step; task 'walker_stand' "
                                          r"has 24 observations and 6 actions, so the model cannot represent it"):
        load_onnx_dynamics(pipeline.model_path, tasks["walker_stand"], device="cpu")


@pytest.mark.parametrize("task", ["cartpole_swingup~v3", "pendulum_swingup"])
def test_the_runtime_plans_zero_shot_on_an_unseen_task_and_says_so(generalist, task):
    from tdm_control.dynamics.onnx_model import load_onnx_dynamics
    from tdm_control.history import History
    from tdm_control.tasks import make_task

    pipeline, _ = generalist
    unseen = make_task(task)  # a variant of a trained task (same layout), or a smaller layout (n = 3)
    model = load_onnx_dynamics(pipeline.model_path, unseen, device="cpu", shards=1)
    (note,) = model.notes
    assert note.startswith(f"zero-shot: {task} is not among the 2 environments this generalist model was trained on")
    n = unseen.observation_size
    obs, rewards = model.rollout(History(8), np.zeros(n), np.zeros((2, 3, 1)))
    assert obs.shape == (2, 3, n) and np.isfinite(rewards).all()


def test_run_time_decoding_feeds_the_local_positions_training_used(generalist):
    from tdm_control.dynamics.tdm_decoder import TDMDecoder
    from tdm_control.history import History
    from training.dataset import Episode, tokenize_episode

    pipeline, _ = generalist
    tok = Tokenizer(3, 1, observation_slots=17, action_slots=6)  # pendulum's layout in the tiny generalist
    rng = np.random.default_rng(0)
    episode = Episode(rng.normal(size=(4, 3)), rng.uniform(size=4), rng.uniform(-1, 1, (3, 1)), np.ones(3, np.int8), 0)
    trained = tokenize_episode(tok, episode, {1: 1.0})  # [o0 r0 sep a0 ... o3 r3]
    history = History(8)
    for t in range(3):
        history.append(episode.observations[t], episode.rewards[t], episode.actions[t])
    history.current_reward = float(episode.rewards[3])
    c = pipeline.model_config()
    fed = []

    def runner(feeds):  # records what the decoder feeds; answers with zeros of the right shapes
        fed.append(feeds["local"])
        t, b = feeds["tokens"].shape[1], feeds["tokens"].shape[0]
        kv = np.zeros((b, c.n_heads, t, c.head_dim), np.float32)
        return [np.zeros((b, t, c.vocab_size), np.float32)] + [kv] * (2 * c.n_layers)

    decoder = TDMDecoder(runner, tok, 64, c.n_layers, c.n_heads, c.head_dim)
    decoder.rollout(history, episode.observations[3], np.zeros((1, 2, 1)))
    stream = np.concatenate(fed)  # prefix, then per step: [r,] sep, a, o...
    np.testing.assert_array_equal(stream[:len(trained.local)], trained.local)  # the prefix is the training stream
    np.testing.assert_array_equal(stream[len(trained.local):], [18, 19, 0, 1, 2, 17, 18, 19, 0, 1, 2])


def test_fine_tuning_from_a_generalist_restores_its_weights_exactly(generalist, tiny_pipeline, tmp_path):
    pipeline, _ = generalist
    cartpole, _ = tiny_pipeline
    base = load_checkpoint(os.path.join(pipeline.run_dir, CHECKPOINT))
    # The target task's pipeline with the generalist's architecture and slots (as a fine-tuning config sets them).
    target = pipeline.model_config()
    # From the weights shipped beside the exported model (export.weights), as a user fine-tunes.
    from training.export import weights_path

    shipped = weights_path(pipeline.model_path)
    assert generalist[1]["weights"] == shipped and "optimizer" not in load_checkpoint(shipped)
    frozen = dataclasses.replace(cartpole.train_config(), max_steps=2, eval_every=2, checkpoint_every=2,
                                 learning_rate=0.0, min_learning_rate=0.0, init_from=shipped)
    train(cartpole.data_dir, str(tmp_path / "tuned"), target, frozen, show_progress=False)
    tuned = load_checkpoint(str(tmp_path / "tuned" / CHECKPOINT))
    assert tuned["task"]["task"] == "cartpole_swingup"  # a fine-tuned model is the target task's
    for name, tensor in base["model"].items():
        assert torch.equal(tensor, tuned["model"][name]), name
    specialist = cartpole.model_config()  # the specialist's own layout: another architecture
    with pytest.raises(ValueError, match="another model config .*observation_slots"):
        train(cartpole.data_dir, str(tmp_path / "bad"), specialist, frozen, show_progress=False)
    other = dict(base, action_repeat=2)
    torch.save(other, tmp_path / "repeat2.pt")
    with pytest.raises(ValueError, match="one action per 2 control steps, this data holds one per 1"):
        train(cartpole.data_dir, str(tmp_path / "repeat"), target,
              dataclasses.replace(frozen, init_from=str(tmp_path / "repeat2.pt")), show_progress=False)


def test_pipeline_config_names_either_a_task_or_tasks(tmp_path):
    from training.pipeline import load_pipeline

    def pipeline(text):
        path = tmp_path / "p.yaml"
        path.write_text("data_dir: d\nrun_dir: r\nmodel_path: m.onnx\n" + text)
        return load_pipeline(str(path))

    with pytest.raises(ConfigError, match="give either task .* or tasks"):
        pipeline("task: cartpole_swingup\ntasks: [cheetah_run]\n")
    with pytest.raises(ConfigError, match="give either task .* or tasks"):
        pipeline("")
    with pytest.raises(ConfigError, match="does not fit a model with 5 observation"):
        pipeline("tasks: [cartpole_swingup, cheetah_run]\nmodel: {observation_slots: 5}\n")
    with pytest.raises(ConfigError, match="cartpole_swingup~v10003 is a held-out variant"):
        pipeline("tasks: [cartpole_swingup~v1, cartpole_swingup~v10003]\n")
    from training.model import TDMConfig

    with pytest.raises(ValueError, match="give observation_slots and action_slots both"):
        TDMConfig(step_tokens=19, observation_slots=17)
    generalist = pipeline("tasks: [cartpole_swingup, cheetah_run]\n")
    assert generalist.data_dirs == [os.path.join("d", "cartpole_swingup"), os.path.join("d", "cheetah_run")]
    assert pipeline("task: cartpole_swingup\n").model_config().observation_slots == 0  # a specialist as before


def test_few_shot_subsets_are_seeded_draws_of_m_episodes(tiny_pipeline, tmp_path):
    from training.cli import main
    from training.dataset import load_dataset, read_metadata, subset_dataset
    from training.errors import TrainingError

    pipeline, _ = tiny_pipeline
    _, source = load_dataset(pipeline.data_dir)
    a = subset_dataset(pipeline.data_dir, str(tmp_path / "a"), 3, draw=0)
    assert len(a) == 3 and a == sorted(set(a))
    assert subset_dataset(pipeline.data_dir, str(tmp_path / "a"), 3, draw=0) == a  # written again: nothing changes
    draws = {tuple(subset_dataset(pipeline.data_dir, str(tmp_path / f"d{d}"), 3, draw=d)) for d in range(6)}
    assert len(draws) > 1  # independent draws differ
    meta, episodes = load_dataset(str(tmp_path / "a"))
    assert meta["subset"]["indices"] == a and meta["task"] == read_metadata(pipeline.data_dir)["task"]
    for episode, index in zip(episodes, a):
        np.testing.assert_array_equal(episode.observations, source[index].observations)
    with pytest.raises(TrainingError, match="holds other data than this subset"):
        subset_dataset(pipeline.data_dir, str(tmp_path / "a"), 3, draw=1)
    with pytest.raises(TrainingError, match="holds 6 episodes; a subset needs 1 to 6, not 7"):
        subset_dataset(pipeline.data_dir, str(tmp_path / "b"), 7, draw=0)
    assert main(["subset", "--from", pipeline.data_dir, "--episodes", "2", "--draw", "3",
                 "--out", str(tmp_path / "cli")]) == 0
    assert len(load_dataset(str(tmp_path / "cli"))[1]) == 2


def test_kept_checkpoints_give_a_fine_tuning_curve_and_export_one_by_one(tiny_pipeline, tmp_path):
    from training.cli import main
    from training.train import TrainConfig, snapshot_path

    pipeline, config_path = tiny_pipeline
    config = dataclasses.replace(pipeline.train_config(), max_steps=6, eval_every=2, checkpoint_every=2,
                                 keep_every=4)
    run = str(tmp_path / "run")
    train(pipeline.data_dir, run, pipeline.model_config(), config, show_progress=False)
    assert sorted(os.listdir(run)) == ["checkpoint.pt", "checkpoint_000004.pt", "tensorboard"]
    assert load_checkpoint(snapshot_path(run, 4))["step"] == 4 and load_checkpoint(os.path.join(run, CHECKPOINT))[
        "step"] == 6
    out = str(tmp_path / "step4.onnx")
    assert main(["export", "--config", config_path, "--checkpoint", snapshot_path(run, 4), "--out", out]) == 0
    assert os.path.getsize(out) > 0
    with pytest.raises(ConfigError, match="keep_every: must be 0 or a multiple of checkpoint_every"):
        TrainConfig(checkpoint_every=4, keep_every=6)


def test_per_task_episode_counts_of_a_generalist(tmp_path):
    from training.pipeline import load_pipeline

    path = tmp_path / "p.yaml"
    path.write_text("data_dir: d\nrun_dir: r\nmodel_path: m.onnx\ntasks: [cartpole_swingup, cartpole_swingup~v3]\n"
                    "collect: {episodes: 16}\ncollect_episodes: {cartpole_swingup~v3: 2}\n")
    pipeline = load_pipeline(str(path))
    assert [pipeline.collect_config(t).episodes for t, _ in pipeline.collected] == [16, 2]
    path.write_text(path.read_text().replace("{cartpole_swingup~v3: 2}", "{cartpole_swingup~v4: 2}"))
    with pytest.raises(ConfigError, match="collect_episodes.*cartpole_swingup~v4 is not one of tasks"):
        load_pipeline(str(path))


def test_the_few_shot_experiment_draws_fine_tunes_evaluates_and_reports(generalist, tiny_pipeline, tiny_model,
                                                                       tmp_path, capsys):
    """experiments/generalist/fewshot.py end to end at toy size: M-episode draws, a fine-tuned generalist
    and a from-scratch TDM per (M, draw), each trained by `tdm-train` in its own process and evaluated
    closed-loop; the report has every (method, M) over its draws, and a rerun trains nothing again."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fewshot", os.path.join(
        os.path.dirname(__file__), "..", "experiments", "generalist", "fewshot.py"))
    fewshot = importlib.util.module_from_spec(spec)
    sys.modules["fewshot"] = fewshot  # its dataclasses look their module up
    spec.loader.exec_module(fewshot)
    g_pipeline, _ = generalist
    pipeline, config_path = tiny_pipeline
    out = tmp_path / "fewshot"
    config = tmp_path / "fewshot.yaml"
    config.write_text(f"""
out: {out}
target: cartpole_swingup
source: {pipeline.data_dir}
episodes: [1]
draws: [0, 1]
methods:
  generalist, fine-tuned:
    pipeline: {os.path.join(os.path.dirname(g_pipeline.run_dir), "pipeline.yaml")}
    init_from: {os.path.join(g_pipeline.run_dir, CHECKPOINT)}
    steps: {{1: 3}}
    train: {{checkpoint_every: 1, eval_every: 1}}
  TDM from scratch:
    pipeline: {config_path}
    steps: {{1: 3}}
    train: {{checkpoint_every: 1, eval_every: 1}}
reference: {{specialist: {tiny_model[1]}}}
evaluation: {{planner: {{planner: random_shooting, samples: 4}}, horizon: 2, seeds: [0], steps: 4}}
""")
    with pytest.raises(ConfigError, match=r"draws 0 and 1 of M = 1 took the same episodes \[3\]"):
        fewshot.main(["--config", str(config)])  # 2 draws of 1 of the 6 episodes: seeds 0 and 1 coincide
    config.write_text(config.read_text().replace("draws: [0, 1]", "draws: [0, 1]\ndraw_seeds: {1: [0, 2]}"))
    assert fewshot.main(["--config", str(config)]) == 0
    assert len(os.listdir(out / "models")) == 4  # 2 methods x 1 M x 2 draws
    fine_tuned = load_checkpoint(str(out / "runs" / f"{fewshot.slug('generalist, fine-tuned')}_M1_d2" / CHECKPOINT))
    assert fine_tuned["step"] == 3 and fine_tuned["model_config"]["observation_slots"] == 17  # the generalist's table
    report = (out / "report.md").read_text()
    rows = {line.split(" | ")[0] + " | " + line.split(" | ")[1]: line for line in report.splitlines()
            if line.startswith("| ") and line.count("|") == 5}
    assert set(rows) == {"| method | M", "| generalist, fine-tuned | 1", "| TDM from scratch | 1", "| specialist | all"}
    assert rows["| TDM from scratch | 1"].split(" | ")[3].count(",") == 1  # its 2 draws' returns
    assert (out / "fewshot.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0
    parsed = fewshot.from_dict(fewshot.FewShotConfig, fewshot.read_yaml(str(config), "few-shot config"))
    assert fewshot.validation_curve(parsed, "tdm_from_scratch_M1_d0")[-1][0] == 3  # the fine-tuning curve's end
    broken = tmp_path / "broken.yaml"  # a failed training names the problem and its log, no traceback
    broken.write_text(config.read_text().replace(f"out: {out}", f"out: {tmp_path / 'broken'}")
                      .replace(os.path.join(g_pipeline.run_dir, CHECKPOINT), str(tmp_path / "missing.pt")))
    assert fewshot.main(["--config", str(broken)]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    stamp = os.path.getmtime(out / "models" / "tdm_from_scratch_M1_d0.onnx")
    assert fewshot.main(["--config", str(config)]) == 0
    assert os.path.getmtime(out / "models" / "tdm_from_scratch_M1_d0.onnx") == stamp


def test_the_shipped_fine_tuning_config_fits_the_shipped_generalist():
    """config/training/cartpole_swingup_finetune.yaml starts from models/generalist_tdm.pt: same
    architecture and slots, same action repeat, weights only (no optimiser state shipped)."""
    from training.pipeline import load_pipeline
    from training.train import same_model_config

    root = os.path.join(os.path.dirname(__file__), "..")
    pipeline = load_pipeline(os.path.join(root, "config", "training", "cartpole_swingup_finetune.yaml"))
    shipped = load_checkpoint(os.path.join(root, pipeline.train_config().init_from))
    assert same_model_config(shipped["model_config"], pipeline.model_config())
    assert shipped["action_repeat"] == pipeline.collect_config().action_repeat == 2
    assert "optimizer" not in shipped and len(shipped["task"]["environments"]) == 22
