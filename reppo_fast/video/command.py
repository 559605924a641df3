"""`python -m reppo_fast.video RUN_DIR [--checkpoint PATH | --iteration N] [--gif] [--out PATH] ...`

Renders one episode of the deterministic policy of a run's checkpoint (the newest valid one unless told),
headless, to RUN_DIR/videos/iter_<iteration>.mp4 (`--gif`: .gif), the path a training run's
`--video-interval` writes, playing from the same start. Any run works, whichever framework trained it and on
whatever devices. Errors are one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reppo_fast import process_env


def _parser() -> argparse.ArgumentParser:
    from reppo_fast.video.scenes import HEIGHT, WIDTH

    parser = argparse.ArgumentParser(prog="python -m reppo_fast.video", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a training run's directory")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", type=Path, help="a checkpoint file of this run (default: the newest "
                                                       "valid one in RUN_DIR/checkpoints)")
    which.add_argument("--iteration", type=int, help="the run's checkpoint of this iteration")
    parser.add_argument("--out", type=Path, help="the video file, .mp4 or .gif (default: "
                                                 "RUN_DIR/videos/iter_<iteration>.mp4)")
    parser.add_argument("--gif", action="store_true", help="write a GIF instead of an MP4 (the default --out "
                                                           "with .gif)")
    parser.add_argument("--height", type=int, default=HEIGHT, help="frame height (default %(default)s)")
    parser.add_argument("--width", type=int, default=WIDTH, help="frame width (default %(default)s)")
    parser.add_argument("--camera", help="DM Control: a camera of the task's model, by name or id (-1: "
                                         "the free camera; default: the model's first, a tracking or fixed "
                                         "view)")
    parser.add_argument("--seed", type=int, help="the episode's seed (default: the one the run's video of "
                                                 "this iteration plays)")
    parser.add_argument("--max-frames", type=int, help="stop after this many agent steps (default: the full "
                                                       "episode)")
    return parser


def render(args: argparse.Namespace) -> str:
    """Make the video `args` asks for; returns the line that says what was written."""
    from reppo_fast.video import VideoError, encode
    from reppo_fast.video.recorder import video_path
    from reppo_fast.video.restore import restore_policy
    from reppo_fast.video.scenes import episode_seed, open_scene

    # Everything the arguments can get wrong is refused before minutes of building and rendering, not after.
    for name, value, low in (("--height", args.height, 1), ("--width", args.width, 1),
                             ("--max-frames", args.max_frames, 1), ("--seed", args.seed, 0)):
        if value is not None and not low <= value < 2**31:
            raise VideoError(f"{name} must be an integer from {low} to 2**31 - 1, got {value}")
    if args.out is not None:
        encode.require(args.out)
    else:
        encode.require(Path("video.gif" if args.gif else "video.mp4"))
    restored = restore_policy(args.run_dir, checkpoint=args.checkpoint, iteration=args.iteration)
    out = args.out or video_path(args.run_dir, restored.iteration, ".gif" if args.gif else ".mp4")
    seed = args.seed if args.seed is not None else episode_seed(restored.cfg.seed, restored.iteration)
    with open_scene(restored.cfg, height=args.height, width=args.width, camera=args.camera) as scene:
        episode = scene.play(restored.policy, seed, args.max_frames)
        encode.write(out, episode.frames, scene.fps)
        fps = scene.fps
    return (f"wrote {out}: {len(episode.frames)} frames of {args.width}x{args.height} at {fps:g} fps, return "
            f"{episode.ret:.1f}, policy of {restored.path.name} (iteration {restored.iteration})")


def main(argv: list[str] | None = None) -> int:
    # Before jax, triton and mujoco are imported: mujoco picks its GL backend at import.
    process_env.configure(triton_interpreter_without_cuda=False)
    process_env.configure_gl()
    from reppo_fast.checkpoint import CheckpointDamagedError, CheckpointFormatError
    from reppo_fast.config import ConfigError
    from reppo_fast.envs.names import UnknownEnvError, UnsupportedEnvError
    from reppo_fast.video import VideoError

    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        print(render(args))
    except (VideoError, ConfigError, UnknownEnvError, UnsupportedEnvError, CheckpointFormatError,
            CheckpointDamagedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
