"""Checkpoints: one .npz of named arrays plus JSON metadata, written atomically (temp file + rename).

A checkpoint holds the whole train state (network and optimiser state, normaliser statistics, Lagrange
multipliers, RNG key, env state) and the host counters, so a resumed run continues bit for bit on CPU.
Its metadata carries FORMAT, the layout of the arrays; a checkpoint of another format is refused, never
loaded by guesswork. (Checkpoints written before the format was recorded have format 1's layout.)

The metadata also carries `payload_sha256`: a SHA-256 over every array's name, dtype, shape and bytes (in
name order) and over the rest of the metadata, so that a damaged file is detected rather than misread.
Loading checks the zip CRCs first, then the checksum; any damage (truncated, zeroed, overwritten, corrupt)
raises CheckpointDamagedError, and `load_newest_valid` falls back to the newest undamaged checkpoint.
Checkpoints written before the checksum existed carry none and load unverified. A write that fails (full,
read-only or unwritable disk) raises CheckpointWriteError and leaves no partial file and every earlier
checkpoint as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

# The layout of the arrays; bump it (and say what changed) when the codec or the networks' parameters change.
# 2 (issue 13): REPPO's critic has its own `zero_dist` parameter; PPO's policy outputs its std (2A outputs).
FORMAT = 2
_META_KEY = "__meta__"
_CHECKSUM_KEY = "payload_sha256"
_NAME = re.compile(r"^ckpt_(\d{8})\.npz$")
_TMP_PREFIX = ".tmp_ckpt_"
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointFormatError(ValueError):
    """A checkpoint written in another format than this version of reppo_fast reads."""


class CheckpointDamagedError(ValueError):
    """A checkpoint file that does not hold what was written, or (from load_newest_valid) a directory
    whose checkpoints all are so. `path` and `reason` name the file and the damage."""

    # path and reason default to None so that pickle, which calls the class with the message alone, works.
    def __init__(self, message: str, path: Path | None = None, reason: str | None = None):
        super().__init__(message)
        self.path, self.reason = path, reason


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; no partial file is left and earlier checkpoints are untouched.
    Made as CheckpointWriteError(errno of the cause (ENOSPC, EACCES, EROFS, ...), message)."""

    def __str__(self):  # the message alone: it already holds the cause's errno and text
        return str(self.strerror)


def checkpoint_path(directory: Path, iteration: int) -> Path:
    return Path(directory) / f"ckpt_{iteration:08d}.npz"


def checkpoint_iteration(path: Path) -> int:
    """The iteration a checkpoint file (as list_checkpoints gives them) is named after."""
    return int(_NAME.match(Path(path).name).group(1))


def _checksum(arrays: dict[str, np.ndarray], meta: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        # The header's byte count keeps one array's bytes from passing for the next one's.
        h.update(json.dumps([name, a.dtype.str, a.shape, a.nbytes]).encode())
        h.update(np.ascontiguousarray(a))
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()


def _write_error(target: Path, cause: OSError) -> CheckpointWriteError:
    reason = f"[Errno {cause.errno}] {cause.strerror}" if cause.errno and cause.strerror else str(cause)
    return CheckpointWriteError(
        cause.errno, f"could not write checkpoint {target}: {reason}; earlier checkpoints are intact")


def save_checkpoint(directory: Path, iteration: int, arrays: dict[str, np.ndarray], meta: dict,
                    keep: int = 3) -> Path:
    """Write ckpt_<iteration>.npz atomically; keep the newest `keep` checkpoints. Raises
    CheckpointWriteError when the disk refuses the write."""
    directory = Path(directory)
    target = checkpoint_path(directory, iteration)
    # The checksum is taken over the metadata as it will read back (JSON turns tuples into lists, ...).
    stored = json.loads(json.dumps({**meta, "format": FORMAT}))
    stored.pop(_CHECKSUM_KEY, None)
    stored[_CHECKSUM_KEY] = _checksum(arrays, stored)
    payload = dict(arrays)
    payload[_META_KEY] = np.frombuffer(json.dumps(stored).encode(), dtype=np.uint8)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX, suffix=".npz")
    except OSError as e:
        raise _write_error(target, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)  # atomic on POSIX: readers see the old file or the new, never half
    except BaseException as e:
        with contextlib.suppress(OSError):  # left behind only if the disk refuses even this; see below
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _write_error(target, e) from e
        raise
    # Only after a successful write: pruning, and removing temp files of a writer killed mid-write (there
    # is one writer per run directory, so none of them is in use). What fails here is retried next save.
    for old in [*list_checkpoints(directory)[:-keep], *directory.glob(_TMP_PREFIX + "*")]:
        with contextlib.suppress(OSError):
            old.unlink(missing_ok=True)
    return target


def list_checkpoints(directory: Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def _damaged(path: Path, reason: str) -> CheckpointDamagedError:
    return CheckpointDamagedError(f"checkpoint {path} is damaged: {reason}", path, reason)


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and metadata as stored, or CheckpointDamagedError saying why they cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError as e:
        raise _damaged(path, f"cannot be read ({e})") from e
    if head != _ZIP_MAGIC:
        raise _damaged(path, "not a zip archive (overwritten, or not a checkpoint)" if head else "empty file")
    try:
        # The CRCs first, so that numpy never parses a corrupt .npy header (whose shape could ask for
        # any amount of memory).
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
        if bad is not None:
            raise _damaged(path, f"corrupt data (bad CRC or header in {bad})")
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != _META_KEY}
            raw = data[_META_KEY].tobytes() if _META_KEY in data.files else None
    except CheckpointDamagedError:
        raise
    except MemoryError:
        raise  # headers are CRC-checked above: this is the machine's limit, not damage
    except zipfile.BadZipFile as e:
        raise _damaged(path, f"truncated or corrupt zip archive ({e})") from e
    except Exception as e:  # zipfile and numpy raise a dozen kinds for malformed input, all damage here
        raise _damaged(path, f"unreadable ({type(e).__name__}: {' '.join(str(e).split())})") from e
    if raw is None:
        raise _damaged(path, f"no metadata entry {_META_KEY}")
    try:
        meta = json.loads(raw.decode())
    except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError
        raise _damaged(path, f"unreadable metadata ({e})") from e
    if not isinstance(meta, dict):
        raise _damaged(path, "metadata is not a JSON object")
    return arrays, meta


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and metadata (without the checksum) of a checkpoint. Raises CheckpointDamagedError for
    a file that does not hold what was written, CheckpointFormatError for one of another format."""
    path = Path(path)
    arrays, meta = _read(path)
    # The format before the checksum: another format is not damage, and may sum differently.
    found = meta.get("format", 1)
    if found != FORMAT:
        raise CheckpointFormatError(
            f"{path} has checkpoint format {found}, this reppo_fast reads format {FORMAT}: resume it with "
            "the reppo_fast version that wrote it, or start a new run")
    expected = meta.pop(_CHECKSUM_KEY, None)
    if expected is not None and expected != _checksum(arrays, meta):
        raise _damaged(path, "checksum mismatch (the arrays or metadata differ from what was written)")
    return arrays, meta


def load_newest_valid(directory: Path) -> tuple[Path, dict[str, np.ndarray], dict, list[tuple[Path, str]]]:
    """The newest undamaged checkpoint in `directory`: (path, arrays, meta, skipped), skipped being the
    (path, reason) of each damaged newer one. Raises FileNotFoundError when there is no checkpoint,
    CheckpointDamagedError when none is valid, CheckpointFormatError at one of another format."""
    found = list_checkpoints(directory)
    if not found:
        raise FileNotFoundError(f"no checkpoint in {directory}")
    skipped = []
    for path in reversed(found):
        try:
            arrays, meta = load_checkpoint(path)
        except CheckpointDamagedError as e:
            skipped.append((path, e.reason))
            continue
        return path, arrays, meta, skipped
    newest, reason = skipped[0]
    raise CheckpointDamagedError(
        f"all {len(found)} checkpoints in {directory} are damaged (newest, {newest.name}: {reason}); "
        "start a new run, or restore the checkpoints from a backup", Path(directory), reason)
