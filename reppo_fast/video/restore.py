"""The deterministic policy of a run's checkpoint, whichever framework wrote it: the run is rebuilt from its
config.json by the runner's own `_build`, cut down to what acting needs, and the checkpoint restored into
it through the trainer's checkpoint codec (`from_arrays`), so the policy is exactly the one training
evaluated (Trainer.policy).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from reppo_fast.checkpoint import (
    checkpoint_iteration,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    load_newest_valid,
)
from reppo_fast.config import Config
from reppo_fast.video import VideoError


class Restored(NamedTuple):
    cfg: Config         # the run's (gamma resolved), with player_config's cuts
    policy: Callable    # raw observations [N, O] -> actions [N, A], numpy
    iteration: int      # the checkpoint's
    path: Path          # the checkpoint file


def run_config(run_dir: Path) -> Config:
    """The run's saved config; a one-line VideoError for a directory that is not a run's."""
    if not run_dir.is_dir():
        raise VideoError(f"{run_dir}: no such directory; pass a run directory (runs/<env>-<algo>-...)")
    path = run_dir / "config.json"
    if not path.exists():
        raise VideoError(f"{run_dir}: no config.json there; pass the directory of a training run")
    try:
        return Config.from_json(path.read_text())
    except json.JSONDecodeError as err:  # ConfigError (unknown fields, bad values) says it already
        raise VideoError(f"{path} is not valid JSON ({err})") from None


def find_checkpoint(run_dir: Path, checkpoint: Path | None = None,
                    iteration: int | None = None) -> tuple[Path, dict[str, np.ndarray], dict]:
    """(path, arrays, meta) of the checkpoint asked for: a file, the run's checkpoint of an iteration, or the
    run's newest valid one. Damaged or foreign files raise the checkpoint module's one-line errors."""
    ckpt_dir = run_dir / "checkpoints"
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise VideoError(f"--checkpoint {checkpoint}: no such file")
        return Path(checkpoint), *load_checkpoint(checkpoint)
    if iteration is not None:
        path = checkpoint_path(ckpt_dir, iteration)
        if not path.exists():
            have = ", ".join(str(checkpoint_iteration(p)) for p in list_checkpoints(ckpt_dir)) or "none"
            raise VideoError(f"--iteration {iteration}: no {path.name} in {ckpt_dir} (checkpointed "
                             f"iterations: {have})")
        return path, *load_checkpoint(path)
    try:
        path, arrays, meta, skipped = load_newest_valid(ckpt_dir)
    except FileNotFoundError:
        raise VideoError(f"{run_dir}: no checkpoint in {ckpt_dir} yet (one is written every "
                         "--checkpoint-interval iterations and at the end)") from None
    for bad, reason in skipped:
        print(f"note: skipping damaged checkpoint {bad.name} ({reason})")
    return path, arrays, meta


def fewest_envs(cfg: Config) -> int:
    """The fewest envs whose rollout every minibatch count divides (validate_world_size on one device)."""
    counts = [cfg.num_minibatches] + ([cfg.rpo.rpo_minibatches] if cfg.algo == "rpo" else [])
    envs = 1
    for minibatches in counts:
        envs = math.lcm(envs, minibatches // math.gcd(minibatches, cfg.num_steps))
    return envs


def player_config(cfg: Config) -> Config:
    """The run's config cut down to acting: the fewest envs on one device in one process (a GPU run renders
    on a laptop), one eval env, no profiling, and the reference kernels, which load anywhere (acting uses no
    kernel; a GPU run's Triton or Pallas kernels need not load where the video is made)."""
    return cfg.replace(num_envs=fewest_envs(cfg), num_eval_envs=1, multi_host=False, profile=False,
                       devices=1 if cfg.framework == "jax" else None, kernels="reference",
                       kernel_overrides={}, progress=False)


def _env_sized(saved: tuple, fresh: tuple) -> bool:
    """Shapes that differ only along their leading (env) axis, or by a leading per-device axis."""
    return (len(saved) == len(fresh) and saved[1:] == fresh[1:]) or saved[1:] == fresh


def fit_episodes(arrays: dict[str, np.ndarray], fresh: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The checkpoint's arrays with the entries sized by the run's envs (env state, episode returns, a
    per-device key stack) taken from `fresh`, the rebuilt run's own: it has a few envs, not the run's
    num_envs over its devices, and the policy reads none of these. A network's shape differs in more than
    its leading axis somewhere if its config does, so from_arrays still refuses a foreign checkpoint."""
    fitted = dict(arrays)
    for name, mine in fresh.items():
        saved = arrays.get(name)
        if saved is not None and saved.shape != mine.shape and _env_sized(saved.shape, mine.shape):
            fitted[name] = mine
    return fitted


def restore_policy(run_dir: Path, *, checkpoint: Path | None = None,
                   iteration: int | None = None) -> Restored:
    """The deterministic policy of `run_dir`'s checkpoint (see find_checkpoint)."""
    from reppo_fast.runner import _build

    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    path, arrays, meta = find_checkpoint(run_dir, checkpoint, iteration)
    built = _build(player_config(cfg))
    trainer = built.trainer
    template = trainer.init_state(cfg.seed)
    # from_arrays says when a run's episodes start afresh (another number of ranks, ManiSkill): true and
    # irrelevant here, where no episode of the run goes on.
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            state = trainer.from_arrays(template, fit_episodes(arrays, trainer.to_arrays(template)))
    except ValueError as err:  # the codec names the entry that does not fit
        raise VideoError(f"{path} does not fit {run_dir}'s config.json (a checkpoint of another run?): "
                         f"{err}") from None
    return Restored(built.cfg, trainer.policy(state), int(meta["iteration"]), path)
