"""The videos of a training run (cfg.video_interval): after every N-th evaluation (and the last) one episode
of the deterministic policy just evaluated, to RUN_DIR/videos/iter_<iteration>.mp4 and to TensorBoard.

TensorBoard shows a preview of it as an animated GIF image (`eval/video`), the summary tensorboardX's
add_video writes, built here without add_video's moviepy dependency. Its events go to RUN_DIR/tb/videos/, a
TensorBoard run of their own: TensorBoard follows only the newest event file of a directory, so a second
writer in RUN_DIR/tb would hide the scalars' file while the run trains.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reppo_fast.config import Config
from reppo_fast.video import encode
from reppo_fast.video.scenes import episode_seed, open_scene

TAG = "eval/video"
# TensorBoard gets a preview, every k-th frame at half size with at most this many frames (about 1 MB for a
# DM Control episode): the full 1000 frames would weigh several MB per event, which TensorBoard loads whole.
# The MP4 is the video.
TB_MAX_FRAMES = 100


def video_path(run_dir: Path, iteration: int, suffix: str = ".mp4") -> Path:
    return Path(run_dir) / "videos" / f"iter_{iteration:08d}{suffix}"


class TrainingVideos:
    """Made before training, so that what a video needs (imageio, a GL library, a task with something to
    draw) is refused before the run trains rather than at its first video. Close it."""

    def __init__(self, cfg: Config, run_dir: Path, resume_steps: int | None = None):
        """resume_steps: the env steps of the checkpoint a resumed run continues from; the video events a
        killed run wrote after it are dropped, as MetricsLogger drops its scalars'."""
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.tb_dir = self.run_dir / "tb" / "videos"
        encode.require(video_path(run_dir, 0))
        if resume_steps is not None:
            from reppo_fast.tb_events import truncate_events

            truncate_events(self.tb_dir, resume_steps)
        self.scene = open_scene(cfg)
        self._tb = None

    def due(self, iteration: int) -> bool:
        """Whether the evaluation after `iteration` is one to film: every video_interval-th, and the last."""
        cfg = self.cfg
        return iteration % (cfg.eval_interval * cfg.video_interval) == 0 or iteration == cfg.num_iterations

    def record(self, policy, iteration: int, env_steps: int) -> Path:
        """Play and write one episode of `policy` (Trainer.policy); returns the MP4's path."""
        episode = self.scene.play(policy, episode_seed(self.cfg.seed, iteration))
        path = encode.write(video_path(self.run_dir, iteration), episode.frames, self.scene.fps)
        self._tensorboard(episode.frames, env_steps)
        return path

    def _tensorboard(self, frames: list[np.ndarray], env_steps: int) -> None:
        from tensorboardX import SummaryWriter
        from tensorboardX.proto.summary_pb2 import Summary

        if self._tb is None:
            self._tb = SummaryWriter(str(self.tb_dir))
        stride = -(-len(frames) // TB_MAX_FRAMES)
        kept = [frame[::2, ::2] for frame in frames[::stride]]
        height, width = kept[0].shape[:2]
        image = Summary.Image(height=height, width=width, colorspace=3,
                              encoded_image_string=encode.gif_bytes(kept, self.scene.fps / stride))
        self._tb.file_writer.add_summary(Summary(value=[Summary.Value(tag=TAG, image=image)]), env_steps)

    def close(self) -> None:
        try:
            self.scene.close()
        finally:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
