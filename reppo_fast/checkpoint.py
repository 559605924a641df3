"""Checkpoints: one .npz of named arrays plus JSON metadata, written atomically (temp file + rename).

A checkpoint holds the whole train state (network and optimiser state, normaliser statistics, Lagrange
multipliers, RNG key, env state) and the host counters, so a resumed run continues bit for bit on CPU.
Its metadata carries FORMAT, the layout of the arrays; a checkpoint of another format is refused, never
loaded by guesswork. (Checkpoints written before the format was recorded have format 1's layout.)
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

# The layout of the arrays; bump it (and say what changed) when the codec or the networks' parameters change.
# 2 (issue 13): REPPO's critic has its own `zero_dist` parameter; PPO's policy outputs its std (2A outputs).
FORMAT = 2
_META_KEY = "__meta__"
_NAME = re.compile(r"^ckpt_(\d{8})\.npz$")


def checkpoint_path(directory: Path, iteration: int) -> Path:
    return Path(directory) / f"ckpt_{iteration:08d}.npz"


def save_checkpoint(directory: Path, iteration: int, arrays: dict[str, np.ndarray], meta: dict,
                    keep: int = 3) -> Path:
    """Write ckpt_<iteration>.npz atomically; keep the newest `keep` checkpoints."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = checkpoint_path(directory, iteration)
    payload = dict(arrays)
    payload[_META_KEY] = np.frombuffer(json.dumps({**meta, "format": FORMAT}).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_ckpt_", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)  # atomic on POSIX: readers see the old file or the new, never half
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return target


def list_checkpoints(directory: Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


class CheckpointFormatError(ValueError):
    """A checkpoint written in another format than this version of reppo_fast reads."""


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != _META_KEY}
        meta = json.loads(data[_META_KEY].tobytes().decode())
    found = meta.get("format", 1)
    if found != FORMAT:
        raise CheckpointFormatError(
            f"{path} has checkpoint format {found}, this reppo_fast reads format {FORMAT}: resume it with "
            "the reppo_fast version that wrote it, or start a new run")
    return arrays, meta
