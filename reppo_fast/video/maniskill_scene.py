"""ManiSkill videos: one env of the task behind the torch contract (envs/maniskill.py), made with ManiSkill's
renderer on (render_mode "rgb_array", its task's render camera at the video's size), each frame what
ManiSkill's `render` returns. SAPIEN renders through Vulkan: on a machine without a GPU, lavapipe's CPU
device (`source scripts/setup_lavapipe.sh`), slowly (on 2 cores, half a minute of shader compiling before
the first frame, then 0.2 s a frame at 320x240).
"""

from __future__ import annotations

import numpy as np
import torch

from reppo_fast.config import Config
from reppo_fast.envs import make_torch_env
from reppo_fast.video.encode import MAX_FPS
from reppo_fast.video.scenes import Episode, episode_length


class ManiSkillScene:
    """One env of a ManiSkill task (on the GPU where there is one) that renders height x width frames."""

    def __init__(self, cfg: Config, *, height: int, width: int):
        cuda = torch.cuda.is_available()
        # The contract's default render backend is "none" (state observations need no camera).
        self.env = make_torch_env(cfg.env, num_envs=1, obs_limit=cfg.obs_limit, render_mode="rgb_array",
                                  render_backend="gpu" if cuda else "cpu",
                                  human_render_camera_configs={"width": width, "height": height})
        self._task = self.env.sim.env
        self.fps = min(MAX_FPS, float(self._task.unwrapped.control_freq))

    def play(self, policy, seed: int, max_frames: int | None = None) -> Episode:
        obs = self.env.reset(seed, random_step_count=False)
        frames, ret = [], 0.0
        for _ in range(episode_length(self.env.max_episode_steps, max_frames)):
            frames.append(self._draw())
            action = torch.as_tensor(policy(obs.cpu().numpy()), device=self.env.device)
            out = self.env.step(action)
            ret += float(out.reward[0])
            if bool(out.terminated[0] | out.truncated[0]):
                break
            obs = out.obs
        return Episode(frames, ret)

    def _draw(self) -> np.ndarray:
        image = self._task.render()  # [1, H, W, 3] uint8, on the render device
        return np.ascontiguousarray(image[0].cpu().numpy(), dtype=np.uint8)

    def close(self) -> None:
        self.env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
