"""Watching an episode: `tdm-control eval --video` renders offscreen and writes MP4 or GIF frames that show it.

The rendering runs in a child process (the CLI), as a user runs it: PyOpenGL binds one platform
per process, and the test process keeps MUJOCO_GL=disable. CI installs an offscreen GL library
(scripts/test.sh: EGL is on the machine, else Debian's OSMesa).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from ros_helpers import DEADLINE_S, ROOT

from tdm_control.config import ConfigError
from tdm_control.evaluation import video

STEPS = 12


def film(path, *args: str, env=None) -> subprocess.CompletedProcess:
    """A short ground-truth episode, one frame per control step (fps 100 at cartpole's 0.01 s)."""
    return subprocess.run(
        [sys.executable, "-m", "tdm_control.cli", "eval", "--model", "mujoco", "--planner", "warm_start", "--samples",
         "8", "--horizon", "8", "--episodes", "1", "--steps", str(STEPS), "--seed", "1", "--no-progress", "--video",
         str(path), "--video-size", "160x112", "--video-fps", "100", *args], cwd=ROOT, text=True,
        capture_output=True, timeout=3 * DEADLINE_S, env=dict(os.environ, **(env or {})))


def gif_frames(path) -> list[np.ndarray]:
    image = Image.open(path)
    frames = []
    for i in range(image.n_frames):
        image.seek(i)
        frames.append(np.asarray(image.convert("RGB")))
    return frames


def assert_watchable(frames: list[np.ndarray]) -> None:
    assert len(frames) == STEPS + 1  # the start, then one per step
    assert frames[0].shape == (112 + video.STRIP_PX, 160, 3)
    for frame in frames:
        scene = frame[:112].astype(float)
        assert scene.std() > 10, "a blank frame"  # a uniform image has std 0; the cartpole scene about 40
    moved = np.abs(frames[-1][:112].astype(float) - frames[0][:112].astype(float)).mean()
    assert moved > 0.1, "the cart and pole did not move between the first and last frames"
    strip = frames[-1][112:]
    assert strip.max() > 200 and np.median(strip) < 60  # light text on the dark strip


def test_eval_writes_a_gif_of_the_episode_with_the_reward(tmp_path):
    run = film(tmp_path / "episode.gif")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"wrote {tmp_path / 'episode.gif'}" in run.stdout
    assert_watchable(gif_frames(tmp_path / "episode.gif"))


def test_eval_writes_an_mp4_where_imageio_ffmpeg_is_installed(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    run = film(tmp_path / "episode.mp4")
    assert run.returncode == 0, run.stdout + run.stderr
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "episode.mp4"))
    meta = next(reader)
    assert tuple(meta["size"]) == (160, 112 + video.STRIP_PX) and meta["fps"] == pytest.approx(100)
    frames = [np.frombuffer(f, dtype=np.uint8).reshape(112 + video.STRIP_PX, 160, 3) for f in reader]
    assert_watchable(frames)


def test_without_an_mp4_encoder_a_gif_is_written_and_said(tmp_path, monkeypatch, capsys):
    frames = [np.full((32, 48, 3), i * 20, dtype=np.uint8) for i in range(5)]
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails, as where it is not installed
    path = video.write_video(str(tmp_path / "x.mp4"), frames, fps=10)
    assert path == str(tmp_path / "x.gif") and len(gif_frames(path)) == 5
    assert f"no MP4 encoder (pip install imageio-ffmpeg, the `video` extra): writing {path} instead" \
        in capsys.readouterr().err


def test_no_gl_backend_is_a_clear_error_naming_the_packages(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "disable")
    monkeypatch.setattr(video, "_probe", lambda backend: f"cannot load lib{backend}")
    with pytest.raises(video.RenderError, match=r"no offscreen OpenGL backend works here \(egl: cannot load libegl; "
                                                r"osmesa: cannot load libosmesa\).*libegl1 libegl-mesa0.*libosmesa6"):
        video.choose_backend()


def test_video_settings_are_checked():
    with pytest.raises(ConfigError, match=r"video: 'out.avi': the file must end in .mp4 or .gif"):
        video.VideoConfig(path="out.avi")
    with pytest.raises(ConfigError, match="WIDTHxHEIGHT"):
        video.parse_size("320")
