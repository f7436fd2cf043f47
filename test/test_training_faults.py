"""Training killed at any point: a rerun ends with the same files, and nothing half-written is ever read.

`tdm-train all` on the tiny pipeline is killed with SIGKILL (no chance to clean up) while
collecting, while fitting and while exporting, each time a random moment after the stage
has visibly begun, and run again after each kill; after every kill, whatever the folders
hold must load. The last run must end with the files of an uninterrupted run (the
session's `tiny_model`, the same config in-process): the same episodes, the same trained
weights and optimizer state, the same exported graph. Collection and training are
deterministic on one machine (episode i from generator (seed, i); training batches by
step, no dropout), which is what makes "the same" exact.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import TINY_PIPELINE
from ros_helpers import ROOT

KILL_DEADLINE_S = 300.0
"""Longest one run may take to reach the point where it is killed (2 shared cores, torch import)."""


def start_train(config: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "training.cli", "all", "--config", config, "--no-progress"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=dict(os.environ, MUJOCO_GL="disable"))


def kill_when(process: subprocess.Popen, ready, delay_s: float, what: str) -> bool:
    """SIGKILLs the run `delay_s` after `ready()` holds; False if it finished first (nothing to kill)."""
    deadline = time.monotonic() + KILL_DEADLINE_S
    while not ready():
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"the run never reached {what}:\n{process.stdout.read()}")
        time.sleep(0.01)
    time.sleep(delay_s)
    if process.poll() is not None:
        return False
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return True


def assert_all_loads(pipeline) -> None:
    """Whatever a killed run left must load: every episode file, the checkpoint, the model."""
    from tdm_control.dynamics import make_dynamics
    from tdm_control.tasks import make_task
    from training.dataset import episode_path, existing_episodes, load_episode
    from training.train import CHECKPOINT, load_checkpoint

    if os.path.isdir(pipeline.data_dir):
        for index in existing_episodes(pipeline.data_dir):
            assert len(load_episode(episode_path(pipeline.data_dir, index))) == 120
    checkpoint = os.path.join(pipeline.run_dir, CHECKPOINT)
    if os.path.exists(checkpoint):
        assert load_checkpoint(checkpoint)["step"] in (20, 40)
    if os.path.exists(pipeline.model_path):
        make_dynamics(pipeline.model_path, make_task(pipeline.task), threads=1).close()


def test_a_killed_pipeline_reruns_to_the_files_of_an_uninterrupted_run(tiny_model, tmp_path):
    import torch

    from tdm_control.dynamics import metadata as model_metadata
    from training.dataset import episode_path, existing_episodes
    from training.pipeline import load_pipeline
    from training.train import CHECKPOINT

    reference, reference_model, _ = tiny_model
    config = tmp_path / "pipeline.yaml"
    config.write_text(TINY_PIPELINE.format(root=tmp_path))
    pipeline = load_pipeline(str(config))
    rng = random.Random(18)
    checkpoint = os.path.join(pipeline.run_dir, CHECKPOINT)
    output: list[str] = []

    def stage(ready, delay_s, what):
        run = start_train(str(config))
        killed = kill_when(run, ready, delay_s, what)
        output.append(run.stdout.read())
        assert_all_loads(pipeline)
        return killed

    episodes = lambda: existing_episodes(pipeline.data_dir) if os.path.isdir(pipeline.data_dir) else []  # noqa: E731
    killed = [stage(lambda: len(episodes()) >= 2, rng.uniform(0.0, 0.3), "collection"),
              stage(lambda: os.path.exists(checkpoint), rng.uniform(0.0, 0.5), "a checkpoint")]
    assert killed == [True, True], output  # 4 episodes and 20 steps were still to go: both runs were cut short
    stage(lambda: any(name.startswith(os.path.basename(pipeline.model_path) + ".tmp")
                      for name in os.listdir(os.path.dirname(pipeline.model_path))),
          rng.uniform(0.0, 2.0), "the export")
    final = start_train(str(config))
    assert final.wait(timeout=KILL_DEADLINE_S) == 0, final.stdout.read()

    # The same episodes...
    assert existing_episodes(pipeline.data_dir) == existing_episodes(reference.data_dir) == list(range(6))
    for index in range(6):
        with np.load(episode_path(pipeline.data_dir, index)) as got, \
                np.load(episode_path(reference.data_dir, index)) as want:
            assert sorted(got.files) == sorted(want.files)
            for key in want.files:
                np.testing.assert_array_equal(got[key], want[key])
    # ...the same weights and optimizer state...
    got = torch.load(checkpoint, weights_only=False)
    want = torch.load(os.path.join(reference.run_dir, CHECKPOINT), weights_only=False)
    assert got["step"] == want["step"] == 40
    for name, tensor in want["model"].items():
        assert torch.equal(got["model"][name], tensor), name
    for state_got, state_want in zip(got["optimizer"]["state"].values(), want["optimizer"]["state"].values()):
        for key in state_want:
            assert torch.equal(torch.as_tensor(state_got[key]), torch.as_tensor(state_want[key])), key
    # ...and the same exported model (its graph and weights; the metadata too, but for paths and timings).
    assert model_metadata.file_weights_digest(pipeline.model_path) == \
        model_metadata.file_weights_digest(reference_model)
    import onnx

    def metadata(path):
        proto = onnx.load(path)
        return json.loads({p.key: p.value for p in proto.metadata_props}[model_metadata.METADATA_KEY])

    assert metadata(pipeline.model_path) == metadata(reference_model)


def test_a_checkpoint_killed_mid_write_never_fails_to_load(tmp_path):
    """SIGKILL while a large checkpoint is being written, again and again: the file that is there loads."""
    from training.train import load_checkpoint

    path = tmp_path / "checkpoint.pt"
    writer = (f"import sys, torch\nsys.path.insert(0, {ROOT!r})\nfrom training.train import save_checkpoint\n"
              "payload = {'model': {'w': torch.randn(4_000_000)}, 'step': 0}\nprint('ready', flush=True)\n"
              f"while True:\n    payload['step'] += 1\n    save_checkpoint({str(path)!r}, payload)\n")
    rng = random.Random(18)
    steps = []
    for _ in range(3):
        process = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + KILL_DEADLINE_S
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.4))  # 16 MB a write: about half the time is spent mid-write
        process.kill()
        process.wait()
        checkpoint = load_checkpoint(str(path))
        assert checkpoint["model"]["w"].shape == (4_000_000,)
        steps.append(checkpoint["step"])
    assert all(step >= 1 for step in steps)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "checkpoint.pt"]
    assert all(".tmp" in name for name in leftovers)  # half-written temporary files, never read
    print(f"killed at steps {steps}, leaving {len(leftovers)} half-written temporary file(s)")


def test_a_terminated_collection_stops_its_worker_processes(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text(TINY_PIPELINE.format(root=tmp_path).replace("episodes: 6", "episodes: 40")
                      .replace("workers: 1", "workers: 2"))
    process = subprocess.Popen([sys.executable, "-m", "training.cli", "collect", "--config", str(config),
                                "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=dict(os.environ, MUJOCO_GL="disable"))

    def workers() -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    deadline = time.monotonic() + KILL_DEADLINE_S
    while len(workers()) < 2 or not os.path.isdir(tmp_path / "data"):
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.05)
    children = workers()
    process.terminate()  # SIGTERM to the collector only, as `kill PID` sends it
    assert process.wait(timeout=60) == 128 + signal.SIGTERM

    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in children), "worker processes outlived the collector"

