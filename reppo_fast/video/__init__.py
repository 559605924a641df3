"""Videos of a run's deterministic policy (README, Videos).

`python -m reppo_fast.video RUN_DIR` renders one episode of a checkpoint's policy, headless, to an MP4 (or a
GIF); `--video-interval N` records one every N evaluations while a run trains.

- command.py: the command line;
- restore.py: the policy of a checkpoint, whichever framework wrote it (the run rebuilt with a few envs);
- scenes.py: the env a video plays, by suite: mujoco_scene.py (DM Control: the MJX physics drawn by MuJoCo's
  renderer), maniskill_scene.py (ManiSkill's own renderer);
- encode.py: MP4 and GIF files;
- recorder.py: the videos of a training run.

Importing this package imports nothing heavy: mujoco chooses its GL backend at its first import, which
process_env.configure_gl must precede.
"""

from __future__ import annotations


class VideoError(ValueError):
    """A video cannot be made as asked; the message is one line saying why and what to do."""


def main(argv: list[str] | None = None) -> int:
    """`python -m reppo_fast.video` (and `reppo-fast video`)."""
    from reppo_fast.video.command import main as command

    return command(argv)
