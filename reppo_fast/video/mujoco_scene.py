"""DM Control videos: the task's MJX physics stepped as one JAX env (contract_jax.VecEnv), each state drawn
by MuJoCo's renderer as mujoco_playground's own `render` draws it (qpos, qvel and mocap bodies copied into an
MjData, then mj_forward), headless through the GL backend of MUJOCO_GL (process_env.configure_gl: EGL with
a GPU, OSMesa without).
"""

from __future__ import annotations

import ctypes.util
import functools
import os

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from reppo_fast.config import Config
from reppo_fast.envs import make_env
from reppo_fast.process_env import GL_LIBRARIES
from reppo_fast.video import VideoError
from reppo_fast.video.encode import MAX_FPS
from reppo_fast.video.scenes import Episode, episode_length

GL_HINT = ("apt-get install libosmesa6 for software rendering (MUJOCO_GL=osmesa), or on a GPU machine "
           "libegl1 with the NVIDIA driver's EGL (MUJOCO_GL=egl)")


def gl_problem() -> str | None:
    """Why MuJoCo cannot render headless here (the library its GL backend loads is missing), or None."""
    backend = os.environ.get("MUJOCO_GL", "")
    if backend in GL_LIBRARIES:
        library, package = GL_LIBRARIES[backend]
        if ctypes.util.find_library(library) is None:
            return f"MUJOCO_GL={backend} needs lib{library}, which is missing: apt-get install {package}"
        return None
    if not backend and not os.environ.get("DISPLAY"):
        return f"no headless GL library for MuJoCo's renderer: {GL_HINT}"
    return None


def _task(env):
    """The mujoco_playground env under the contract and its wrappers (action repeat)."""
    raw = env.raw
    while not hasattr(raw, "mj_model") and hasattr(raw, "raw"):
        raw = raw.raw
    if not hasattr(raw, "mj_model"):
        raise VideoError(f"{env.name} has no MuJoCo model to render")
    return raw


def _camera(model: mujoco.MjModel, camera: str | None) -> int:
    """A camera id: `camera` by name or id; by default the model's first camera (DM Control lists its tracking
    or fixed view first), or MuJoCo's free camera (-1) where the model has none."""
    if camera is None:
        return 0 if model.ncam > 0 else -1
    names = [model.camera(i).name for i in range(model.ncam)]
    if camera.lstrip("-").isdigit() and -1 <= int(camera) < model.ncam:
        return int(camera)
    if camera in names:
        return names.index(camera)
    raise VideoError(f"--camera {camera}: the model's cameras are {', '.join(names) or 'none'} (or an id "
                     f"from -1, the free camera, to {model.ncam - 1})")


def _renderer(model: mujoco.MjModel, height: int, width: int) -> mujoco.Renderer:
    problem = gl_problem()
    if problem is not None:
        raise VideoError(problem)
    # MuJoCo refuses a size beyond the model's offscreen buffer (DM Control's: 640x480): grow the buffer.
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    try:
        return mujoco.Renderer(model, height=height, width=width)
    except Exception as err:  # the GL libraries raise their own types (GLFWError, EGLError, ImportError, ...)
        detail = " ".join(str(err).split()) or type(err).__name__
        backend = os.environ.get("MUJOCO_GL", "")
        raise VideoError(f"MuJoCo could not open a GL context (MUJOCO_GL={backend!r}: {detail}); "
                         f"{GL_HINT}") from None


class MujocoScene:
    """One env of a DM Control task and a renderer of height x width pixels."""

    def __init__(self, cfg: Config, *, height: int, width: int, camera: str | None = None):
        env = make_env(cfg.env, num_envs=1, impl=cfg.env_impl, action_repeat=cfg.action_repeat,
                       obs_limit=cfg.obs_limit)
        if cfg.algo == "rpo":
            from reppo_fast.runner import _make_differentiable

            _make_differentiable(cfg, env)  # the physics RPO trained and evaluated on
        task = _task(env)
        self.env, self.model = env, task.mj_model
        self.camera = _camera(self.model, camera)
        self.renderer = _renderer(self.model, height, width)
        self.data = mujoco.MjData(self.model)
        # Real time is one frame per agent step of action_repeat control steps.
        self.fps = min(MAX_FPS, 1.0 / (task.dt * cfg.action_repeat))
        self._reset = jax.jit(functools.partial(env.reset, random_step_count=False))
        self._step = jax.jit(env.step)

    def play(self, policy, seed: int, max_frames: int | None = None) -> Episode:
        state = self._reset(jax.random.PRNGKey(seed))
        frames, ret = [], 0.0
        for _ in range(episode_length(self.env.max_episode_steps, max_frames)):
            frames.append(self._draw(state.raw.data))
            state, out = self._step(state, jnp.asarray(policy(np.asarray(state.obs))))
            ret += float(out.reward[0])
            if bool(out.terminated[0] | out.truncated[0]):
                break
        return Episode(frames, ret)

    def _draw(self, data) -> np.ndarray:
        qpos, qvel, mocap_pos, mocap_quat = jax.device_get((data.qpos, data.qvel, data.mocap_pos,
                                                            data.mocap_quat))
        d = self.data
        d.qpos[:], d.qvel[:] = qpos[0], qvel[0]
        if self.model.nmocap:
            d.mocap_pos[:], d.mocap_quat[:] = mocap_pos[0], mocap_quat[0]
        mujoco.mj_forward(self.model, d)
        self.renderer.update_scene(d, camera=self.camera)
        return self.renderer.render()

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
