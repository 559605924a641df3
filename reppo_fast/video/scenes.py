"""The env a video plays, by suite (`open_scene`), and what every scene returns.

A scene holds one env of the run's task, made as evaluation makes its envs (the env's own full episodes,
the run's action repeat and blow-up guard), and a renderer. `play(policy, seed, max_frames)` plays one
episode with a host policy (raw observations [1, O] -> actions [1, A], numpy: Trainer.policy) and draws the
state each action is chosen in, so the frames are the episode's agent steps. Close a scene (or use it as a
context manager): a renderer left to its finaliser can raise at exit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reppo_fast.config import Config
from reppo_fast.envs.names import resolve_env
from reppo_fast.video import VideoError

HEIGHT, WIDTH = 240, 320  # dm_control's default render size


class Episode(NamedTuple):
    frames: list[np.ndarray]  # uint8 [H, W, 3], one per agent step
    ret: float                # the undiscounted return of the steps played


def episode_seed(seed: int, iteration: int) -> int:
    """The seed of the episode a video of `iteration` plays: a training run's video and the command's video of
    the same checkpoint start alike, and each iteration's from another state."""
    return (seed + iteration) % 2**31


def open_scene(cfg: Config, *, height: int = HEIGHT, width: int = WIDTH, camera: str | None = None):
    """The scene of cfg.env: MujocoScene (DM Control) or ManiSkillScene. camera: a MuJoCo camera's name or
    id (DM Control only; default: the task's first camera, its tracking or fixed view)."""
    if height < 1 or width < 1:
        raise VideoError(f"the video size must be positive, got {height}x{width}")
    suite = resolve_env(cfg.env).suite
    if suite == "dmc":
        from reppo_fast.video.mujoco_scene import MujocoScene

        return MujocoScene(cfg, height=height, width=width, camera=camera)
    if suite == "maniskill":
        if camera is not None:
            raise VideoError("--camera names a MuJoCo camera (DM Control tasks); ManiSkill renders through "
                             "its task's own render camera")
        from reppo_fast.video.maniskill_scene import ManiSkillScene

        return ManiSkillScene(cfg, height=height, width=width)
    raise VideoError(f"{cfg.env} cannot be rendered: it is an analytic test env with nothing to draw; videos "
                     "are for DM Control and ManiSkill tasks")


def episode_length(max_episode_steps: int, max_frames: int | None) -> int:
    """Agent steps to play: the full episode, or at most max_frames of it."""
    if max_frames is None:
        return max_episode_steps
    if max_frames < 1:
        raise VideoError(f"--max-frames must be a positive integer, got {max_frames}")
    return min(max_episode_steps, max_frames)
