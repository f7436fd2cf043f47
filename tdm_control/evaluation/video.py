"""Episodes a person can watch: offscreen MuJoCo rendering to MP4 (or GIF), the step's reward beside each frame.

    tdm-control eval --model models/cartpole_swingup_tdm.onnx --planner warm_start --episodes 1 --video out.mp4

Rendering needs an OpenGL backend that works without a display: EGL (Debian: `libegl1` and
`libegl-mesa0`, or a GPU driver's EGL) or OSMesa (Debian: `libosmesa6`), as `MUJOCO_GL=egl|osmesa`
chooses. With MUJOCO_GL unset or `disable` (the package sets `disable` so that nothing opens a GL
context by accident) EGL is tried, then OSMesa, each first in a child process: PyOpenGL binds one
platform per process, so a backend that fails cannot be swapped for another in the same process.
Where none works the error says which packages to install.

Frames are encoded as MP4 (H.264) with `imageio-ffmpeg` (pip, the `video` extra: an ffmpeg binary in
the wheel) or, without it, as an animated GIF with Pillow (a matplotlib dependency); a path ending in
`.gif` always gives a GIF. One frame is rendered every `stride` control steps, so the video plays in
real time at `fps`. Under each frame a strip shows the episode, the simulated time, the step's reward
(number and bar) and the return so far.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import subprocess
import sys
from typing import Any

import numpy as np

from tdm_control.config import ConfigError, check

BACKENDS = ("egl", "osmesa")
"""Offscreen OpenGL backends of MuJoCo's Python bindings, in the order they are tried."""
INSTALL_HINT = ("install an offscreen OpenGL library: Debian/Ubuntu `apt-get install libegl1 libegl-mesa0` (EGL) "
                "or `apt-get install libosmesa6` (OSMesa), then set MUJOCO_GL=egl or MUJOCO_GL=osmesa; PyOpenGL "
                "(pip, installed with dm_control) is needed too")
STRIP_PX = 16
"""Height of the text strip under each frame (pixels)."""
PROBE = """
import mujoco, importlib, sys
context = importlib.import_module('mujoco.' + sys.argv[1]).GLContext(16, 16)
context.make_current()
model = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size="1"/></worldbody></mujoco>')
renderer = mujoco.Renderer(model, 16, 16)
renderer.update_scene(mujoco.MjData(model))
renderer.render()
renderer.close()
context.free()
"""
"""Opens a context of backend argv[1] and renders one frame: whether that backend works here."""


class RenderError(RuntimeError):
    """No offscreen OpenGL backend works here; the message says what each one said and what to install."""


@dataclasses.dataclass(frozen=True)
class VideoConfig:
    """How episodes are filmed (`--video`, `--video-size`, `--video-fps`)."""

    path: str
    """Output file: .mp4 (H.264; GIF where imageio-ffmpeg is missing) or .gif."""
    width: int = 320
    """Frame width (pixels); a multiple of 16 keeps H.264 from resizing."""
    height: int = 240
    """Height of the rendered scene (pixels); the text strip adds STRIP_PX."""
    fps: float = 25.0
    """Frames per second of video: one frame every round(1 / (fps * control timestep)) control steps."""
    camera: int | str = 0
    """MuJoCo camera (id or name); 0 is each dm_control task's first (cartpole's fixed side view)."""

    def __post_init__(self) -> None:
        check(os.path.splitext(self.path)[1].lower() in (".mp4", ".gif"), "video",
              f"{self.path!r}: the file must end in .mp4 or .gif")
        check(16 <= self.width <= 1920 and 16 <= self.height <= 1080, "video_size",
              f"must be between 16x16 and 1920x1080 pixels, got {self.width}x{self.height}")
        check(self.fps > 0, "video_fps", f"must be > 0, got {self.fps}")


def parse_size(text: str) -> tuple[int, int]:
    """'320x240' -> (320, 240)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"video size {text!r}: expected WIDTHxHEIGHT, e.g. 320x240") from None
    return width, height


def _probe(backend: str) -> str | None:
    """None if `backend` renders in a child process, else what went wrong (its last error line)."""
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        run = subprocess.run([sys.executable, "-c", PROBE, backend], env=env, capture_output=True, text=True,
                             timeout=120)
    except subprocess.TimeoutExpired:
        return "timed out opening a context"
    if run.returncode == 0:
        return None
    lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {run.returncode}"


def choose_backend() -> str:
    """The backend to render with: MUJOCO_GL's if it names one (trusted), else the first that works here.

    Raises RenderError saying why each failed and what to install.
    """
    requested = os.environ.get("MUJOCO_GL", "").strip().lower()
    if requested in BACKENDS:
        return requested
    problems = []
    for backend in BACKENDS:
        problem = _probe(backend)
        if problem is None:
            return backend
        problems.append(f"{backend}: {problem}")
    raise RenderError(f"no offscreen OpenGL backend works here ({'; '.join(problems)}); {INSTALL_HINT}")


class SceneRenderer:
    """Renders a MuJoCo model's scene offscreen into (H, W, 3) uint8 frames.

    It owns its OpenGL context (MuJoCo's `GLContext` of the chosen backend) and draws with MuJoCo's
    own visualisation calls (mjv_updateScene, mjr_render, mjr_readPixels), so it works whatever
    MUJOCO_GL was when MuJoCo was imported.
    """

    def __init__(self, model: Any, width: int, height: int, camera: int | str = 0) -> None:
        import mujoco

        if getattr(mujoco, "GLContext", None) is not None:  # MUJOCO_GL named a backend when MuJoCo was imported
            self.backend, make_context = os.environ.get("MUJOCO_GL", "default"), mujoco.GLContext
        else:
            self.backend = choose_backend()
            platform = os.environ.setdefault("PYOPENGL_PLATFORM", self.backend)
            if platform != self.backend:
                raise RenderError(f"PYOPENGL_PLATFORM={platform} but rendering needs {self.backend}: "
                                  f"unset PYOPENGL_PLATFORM or set MUJOCO_GL={platform}")
            make_context = None
        try:
            if make_context is None:
                make_context = importlib.import_module(f"mujoco.{self.backend}").GLContext
            self._gl = make_context(width, height)
            self._gl.make_current()
        except Exception as e:  # noqa: BLE001 - any failure here is a missing or broken GL library
            raise RenderError(f"cannot open an {self.backend} OpenGL context ({type(e).__name__}: {e}); "
                              f"{INSTALL_HINT}") from e
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        self._mujoco = mujoco
        self._model = model
        self._scene = mujoco.MjvScene(model, maxgeom=10_000)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0  # a plain background: clearer, and small GIFs
        self._option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()
        self._camera = mujoco.MjvCamera()
        if model.ncam:
            self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
            self._camera.fixedcamid = camera if isinstance(camera, int) else model.camera(camera).id
        else:
            mujoco.mjv_defaultFreeCamera(model, self._camera)
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._pixels = np.empty((height, width, 3), dtype=np.uint8)

    def render(self, data: Any) -> np.ndarray:
        """The scene of `data` (MjData of the model) seen from the camera: (H, W, 3) uint8, top row first."""
        mj = self._mujoco
        self._gl.make_current()
        mj.mjv_updateScene(self._model, data, self._option, self._perturb, self._camera, mj.mjtCatBit.mjCAT_ALL,
                           self._scene)
        mj.mjr_render(self._rect, self._scene, self._context)
        mj.mjr_readPixels(self._pixels, None, self._rect, self._context)
        return np.flipud(self._pixels).copy()  # OpenGL's first row is the bottom

    def close(self) -> None:
        if self._gl is not None:
            self._context.free()
            self._gl.free()
            self._gl = None


def caption(frame: np.ndarray, text: str, reward: float) -> np.ndarray:
    """`frame` (H, W, 3) with a strip under it: `text`, and a bar as long as `reward` in [0, 1] is of the width."""
    from PIL import Image, ImageDraw

    height, width, _ = frame.shape
    image = Image.new("RGB", (width, height + STRIP_PX), (20, 20, 20))
    image.paste(Image.fromarray(frame), (0, 0))
    draw = ImageDraw.Draw(image)
    bar = int(round(np.clip(reward, 0.0, 1.0) * width))
    draw.rectangle([0, height + STRIP_PX - 3, bar, height + STRIP_PX - 1], fill=(80, 200, 80))
    draw.text((3, height + 1), text, fill=(235, 235, 235))
    return np.asarray(image)


class EpisodeVideo:
    """Collects captioned frames of one or more episodes and writes them to `config.path` on `close`.

    Args:
      config: where and how.
      model: the MuJoCo model (MjModel) the episodes simulate.
      control_timestep: seconds per control step (sets the frame stride).
    """

    def __init__(self, config: VideoConfig, model: Any, control_timestep: float) -> None:
        self.config = config
        self.stride = max(1, round(1.0 / (config.fps * control_timestep)))
        self.control_timestep = control_timestep
        self.renderer = SceneRenderer(model, config.width, config.height, config.camera)
        self.frames: list[np.ndarray] = []
        self.episode = -1
        self.episode_return = 0.0

    def begin_episode(self, data: Any) -> None:
        """The next episode (0, 1, ...) starts from the state in `data` (MjData): its first frame."""
        self.episode, self.episode_return = self.episode + 1, 0.0
        self._add(data, 0, float("nan"))

    def step(self, data: Any, steps_done: int, reward: float) -> None:
        """After control step `steps_done` (1-based) whose reward was `reward`: a frame every `stride` steps."""
        self.episode_return += reward
        if steps_done % self.stride == 0:
            self._add(data, steps_done, reward)

    def _add(self, data: Any, steps_done: int, reward: float) -> None:
        shown = "-" if np.isnan(reward) else f"{reward:.2f}"
        text = (f"ep {self.episode}  t {steps_done * self.control_timestep:5.2f} s  reward {shown}  "
                f"return {self.episode_return:.1f}")
        self.frames.append(caption(self.renderer.render(data), text, 0.0 if np.isnan(reward) else reward))

    def close(self) -> str:
        """Writes the video; returns the path written (.gif instead of .mp4 where no encoder is installed)."""
        self.renderer.close()
        return write_video(self.config.path, self.frames, 1.0 / (self.stride * self.control_timestep))


def write_video(path: str, frames: list[np.ndarray], fps: float) -> str:
    """Writes frames (H, W, 3) uint8 as MP4 (path ends in .mp4 and imageio-ffmpeg imports) or GIF.

    Returns:
      the path written: `path`, or `path` with .gif for .mp4 where no encoder is installed (said on stderr).
    """
    if path.lower().endswith(".mp4"):
        try:
            import imageio_ffmpeg
        except ImportError:
            path = os.path.splitext(path)[0] + ".gif"
            print(f"no MP4 encoder (pip install imageio-ffmpeg, the `video` extra): writing {path} instead",
                  file=sys.stderr)
        else:
            write_mp4(imageio_ffmpeg, path, frames, fps)
            return path
    write_gif(path, frames, fps)
    return path


def write_mp4(imageio_ffmpeg: Any, path: str, frames: list[np.ndarray], fps: float) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    height, width, _ = frames[0].shape
    writer = imageio_ffmpeg.write_frames(path, (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=2, output_params=["-crf", "23"], ffmpeg_log_level="error")
    writer.send(None)  # starts ffmpeg
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def write_gif(path: str, frames: list[np.ndarray], fps: float) -> None:
    """An animated GIF, looping, with one palette for the whole video (small files, no flicker)."""
    from PIL import Image

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sample = Image.fromarray(np.concatenate(frames[:: max(1, len(frames) // 8)], axis=0))
    palette = sample.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0,
                   optimize=True)
