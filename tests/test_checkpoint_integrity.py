"""Checkpoint integrity (issue 16): a checksum over the payload, every kind of damage detected, resume from
the newest valid checkpoint, and a failed write that leaves no partial file and the earlier ones intact."""

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reppo_fast import checkpoint
from reppo_fast.checkpoint import (
    CheckpointDamagedError,
    CheckpointFormatError,
    CheckpointWriteError,
    list_checkpoints,
    load_checkpoint,
    load_newest_valid,
    save_checkpoint,
)


def _arrays(it=1):
    return {"w": np.arange(64, dtype=np.float64) * it, "key": np.array([7, it], np.uint32)}


def _save(directory, it):
    meta = {"iteration": it, "elapsed": 1.5 * it, "last_eval": None}
    return save_checkpoint(directory, it, _arrays(it), meta)


def _raw(path):
    """The arrays and the stored metadata (checksum included) of an .npz, read without the module."""
    data = dict(np.load(path))
    return data, json.loads(data.pop("__meta__").tobytes().decode())


def _write_raw(path, arrays, meta_bytes):
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to a str path
        np.savez(f, **arrays, __meta__=np.frombuffer(meta_bytes, np.uint8))


def _nan(bits, dtype):
    return np.array([bits], dtype={np.float32: np.uint32, np.float64: np.uint64}[dtype]).view(dtype)


def test_round_trip_with_checksum_is_bit_exact(tmp_path):
    arrays = {"f32": np.concatenate([_nan(0x7FC00001, np.float32), _nan(0xFFBADBAD, np.float32),
                                     np.array([-0.0, np.inf], np.float32)]),
              "f64": _nan(0x7FF0000000000DAD, np.float64), "u32": np.array([0, 2**32 - 1], np.uint32),
              "flag": np.array([True, False]), "scalar": np.float32(2.5), "empty": np.zeros((0, 3), np.int8),
              "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "['x'].y": np.int64(-3)}
    meta = {"iteration": 12, "elapsed": 3.25, "last_eval": None, "nested": {"a": [1, 2.5, "s"]}}
    path = save_checkpoint(tmp_path, 12, arrays, meta)
    got, got_meta = load_checkpoint(path)
    assert got_meta == {**meta, "format": checkpoint.FORMAT}
    assert set(got) == set(arrays)
    for k, v in arrays.items():
        v = np.asarray(v)
        assert (got[k].dtype, got[k].shape) == (v.dtype, v.shape), k
        assert got[k].tobytes() == v.tobytes(), k  # bit for bit, NaN payloads and -0.0 included
    _, stored = _raw(path)
    assert len(stored["payload_sha256"]) == 64 and "payload_sha256" not in got_meta


def _half(data):
    return data[:len(data) // 2]


def _flip_in_w(data):
    """One byte flipped in the middle of array w's data: the zip (uncompressed) holds it verbatim."""
    at = data.find(_arrays(30)["w"].tobytes()) + 8 * 32 + 3
    assert at > 8 * 32
    return data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1:]


DAMAGE = {
    "truncated to half": (_half, "truncated or corrupt zip archive"),
    "truncated to 10 bytes": (lambda d: d[:10], "truncated or corrupt zip archive"),
    "zeroed": (lambda d: bytes(len(d)), "not a zip archive"),
    "random bytes": (lambda d: b"\x8a" + np.random.default_rng(0).bytes(len(d) - 1), "not a zip archive"),
    "a text file": (lambda d: b"these are my notes, not a checkpoint\n", "not a zip archive"),
    "empty": (lambda d: b"", "empty file"),
    "an array byte flipped": (_flip_in_w, "corrupt data (bad CRC or header in w.npy)"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_each_kind_of_damage_is_detected_with_its_reason(tmp_path, kind):
    damage, reason = DAMAGE[kind]
    path = _save(tmp_path, 30)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointDamagedError) as caught:
        load_checkpoint(path)
    e = caught.value
    assert e.path == path and reason in e.reason
    assert str(e) == f"checkpoint {path} is damaged: {e.reason}" and "\n" not in str(e)


def _replace_array(arrays, meta):
    return {**arrays, "w": arrays["w"] + 1}, meta


def _rename_array(arrays, meta):
    return {"v" if k == "w" else k: a for k, a in arrays.items()}, meta


def _change_meta(arrays, meta):
    return arrays, {**meta, "iteration": meta["iteration"] + 1}


@pytest.mark.parametrize("forge", [_replace_array, _rename_array, _change_meta])
def test_a_rewritten_file_with_sound_zip_crcs_fails_the_checksum(tmp_path, forge):
    path = _save(tmp_path, 30)
    arrays, meta = forge(*_raw(path))
    _write_raw(path, arrays, json.dumps(meta).encode())  # fresh CRCs, the old checksum
    with pytest.raises(CheckpointDamagedError, match="checksum mismatch"):
        load_checkpoint(path)


@pytest.mark.parametrize("meta_bytes, reason", [
    (None, "no metadata entry __meta__"),
    (b'{"iteration": 3', "unreadable metadata"),
    (b'\xff\xfe{"iteration": 3}', "unreadable metadata"),
    (b"[1, 2]", "metadata is not a JSON object"),
])
def test_missing_or_unreadable_metadata_is_damage(tmp_path, meta_bytes, reason):
    path = checkpoint.checkpoint_path(tmp_path, 30)
    if meta_bytes is None:
        with open(path, "wb") as f:
            np.savez(f, **_arrays())
    else:
        _write_raw(path, _arrays(), meta_bytes)
    with pytest.raises(CheckpointDamagedError, match=reason):
        load_checkpoint(path)


def test_no_single_byte_corruption_is_misread(tmp_path):
    """Every byte of a checkpoint in turn overwritten: the file loads as written (an unused zip field) or
    is reported damaged; never another exception, never other arrays."""
    arrays = {"w": np.arange(4, dtype=np.float32), "k": np.array([1, 2], np.uint32)}
    path = save_checkpoint(tmp_path, 3, arrays, {"iteration": 3})
    good = path.read_bytes()
    want_arrays, want_meta = load_checkpoint(path)
    detected = 0
    for at in range(len(good)):
        path.write_bytes(good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1:])
        try:
            arrays, meta = load_checkpoint(path)
        except CheckpointDamagedError:
            detected += 1
            continue
        assert meta == want_meta and arrays.keys() == want_arrays.keys(), at
        assert all(arrays[k].tobytes() == want_arrays[k].tobytes() for k in arrays), at
    assert detected > len(good) // 2  # most bytes matter: 669 of 877 with numpy 2.4


def _damage(path):
    path.write_bytes(path.read_bytes()[:100])


def test_resume_falls_back_to_the_newest_valid_checkpoint(tmp_path):
    paths = [_save(tmp_path, it) for it in (10, 20, 30)]
    _damage(paths[2])
    path, arrays, meta, skipped = load_newest_valid(tmp_path)
    assert path == paths[1] and meta["iteration"] == 20 and np.array_equal(arrays["w"], _arrays(20)["w"])
    assert [p for p, _ in skipped] == [paths[2]] and "truncated" in skipped[0][1]
    paths[1].write_bytes(b"")
    path, _, meta, skipped = load_newest_valid(tmp_path)
    assert path == paths[0] and meta["iteration"] == 10
    assert skipped == [(paths[2], skipped[0][1]), (paths[1], "empty file")]


def test_no_valid_checkpoint_is_a_one_line_error(tmp_path):
    for it in (10, 20, 30):
        _damage(_save(tmp_path, it))
    with pytest.raises(CheckpointDamagedError) as caught:
        load_newest_valid(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"all 3 checkpoints in {tmp_path} are damaged")
    assert "ckpt_00000030.npz: truncated" in message and "start a new run" in message


def test_no_checkpoint_at_all_is_a_clear_error(tmp_path):
    (tmp_path / ".tmp_ckpt_x.npz").write_bytes(b"PK")
    for directory in (tmp_path, tmp_path / "missing"):
        with pytest.raises(FileNotFoundError, match=f"^no checkpoint in {directory}$"):
            load_newest_valid(directory)


def test_a_checkpoint_without_checksum_still_loads(tmp_path):
    path = checkpoint.checkpoint_path(tmp_path, 5)
    meta = {"iteration": 5, "elapsed": 2.0, "last_eval": None, "format": checkpoint.FORMAT}
    _write_raw(path, _arrays(5), json.dumps(meta).encode())
    arrays, got = load_checkpoint(path)
    assert got == meta and np.array_equal(arrays["w"], _arrays(5)["w"])
    assert load_newest_valid(tmp_path)[0] == path


@pytest.mark.parametrize("found", [1, 3])
def test_another_format_is_refused_not_taken_for_damage(tmp_path, found):
    path = _save(tmp_path, 20)
    arrays, meta = _raw(path)
    # The format is read before the checksum is checked: another format may sum otherwise (or not at all).
    if found == 1:
        meta.pop("format")  # format 1 did not record its format
    else:
        meta["format"] = found
    _write_raw(path, arrays, json.dumps(meta).encode())
    for load in (load_checkpoint, load_newest_valid):
        with pytest.raises(CheckpointFormatError, match=f"format {found},"):
            load(path if load is load_checkpoint else tmp_path)


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir())}


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _savez_then_disk_full(file, **arrays):
    file.write(b"PK\x03\x04" + b"\0" * 100_000)
    _enospc()


@pytest.mark.parametrize("where", ["savez", "fsync", "replace"])
def test_a_full_disk_leaves_no_partial_file_and_the_earlier_checkpoints_intact(tmp_path, monkeypatch, where):
    for it in (10, 20, 30):
        _save(tmp_path, it)
    before = _snapshot(tmp_path)
    module, fails = {"savez": (checkpoint.np, _savez_then_disk_full), "fsync": (checkpoint.os, _enospc),
                     "replace": (checkpoint.os, _enospc)}[where]
    monkeypatch.setattr(module, where, fails)
    with pytest.raises(CheckpointWriteError) as caught:
        _save(tmp_path, 40)
    monkeypatch.undo()
    target = checkpoint.checkpoint_path(tmp_path, 40)
    assert str(caught.value) == (f"could not write checkpoint {target}: [Errno 28] No space left on device; "
                                 "earlier checkpoints are intact")
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert _snapshot(tmp_path) == before  # nothing pruned, nothing half written, no temp file
    assert load_newest_valid(tmp_path)[2:] == ({"iteration": 30, "elapsed": 45.0, "last_eval": None,
                                                "format": checkpoint.FORMAT}, [])
    _save(tmp_path, 40)  # the next interval's try, with room again
    assert [p.name for p in list_checkpoints(tmp_path)] == [f"ckpt_{i:08d}.npz" for i in (20, 30, 40)]


def test_an_unwritable_directory_is_a_write_error_naming_the_path(tmp_path, monkeypatch):
    _save(tmp_path, 10)
    before = _snapshot(tmp_path)

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path))

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", refused)
    with pytest.raises(CheckpointWriteError, match=r"^could not write checkpoint .*ckpt_00000020\.npz: "
                                                   r"\[Errno 13\] Permission denied; earlier checkpoints"):
        _save(tmp_path, 20)
    assert _snapshot(tmp_path) == before


def test_a_checkpoint_directory_that_cannot_be_created_is_a_write_error(tmp_path):
    (tmp_path / "run").write_text("a file where the run directory should be")
    with pytest.raises(CheckpointWriteError, match=r"could not write checkpoint .*run/checkpoints/ckpt_"):
        _save(tmp_path / "run" / "checkpoints", 10)


def test_a_read_only_directory_is_a_write_error(tmp_path):
    _save(tmp_path, 10)
    before = _snapshot(tmp_path)
    tmp_path.chmod(0o500)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("this process writes to read-only directories (root with CAP_DAC_OVERRIDE)")
        with pytest.raises(CheckpointWriteError, match="Permission denied"):
            _save(tmp_path, 20)
    finally:
        tmp_path.chmod(0o700)
    assert _snapshot(tmp_path) == before


def test_a_writer_killed_mid_write_leaves_a_temp_file_that_is_ignored_then_removed(tmp_path):
    for it in (10, 20, 30):
        _save(tmp_path, it)
    killed = f"""
import os, signal
import numpy as np
from reppo_fast import checkpoint
def savez(file, **arrays):
    file.write(b"PK\\x03\\x04" + b"\\0" * 1000)
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)
np.savez = savez
checkpoint.save_checkpoint({str(tmp_path)!r}, 40, {{"w": np.ones(3)}}, {{"iteration": 40}})
"""
    done = subprocess.run([sys.executable, "-c", killed], cwd=Path(__file__).parents[1])
    assert done.returncode == -signal.SIGKILL
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".tmp_ckpt_")]
    assert len(stale) == 1 and stale[0].stat().st_size > 1000
    assert [p.name for p in list_checkpoints(tmp_path)] == [f"ckpt_{i:08d}.npz" for i in (10, 20, 30)]
    assert load_newest_valid(tmp_path)[2]["iteration"] == 30
    _save(tmp_path, 40)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"ckpt_{i:08d}.npz" for i in (20, 30, 40)]


def test_the_errors_survive_pickling_with_their_details(tmp_path):
    """They cross process boundaries (data-parallel ranks, multiprocessing)."""
    damaged = CheckpointDamagedError("checkpoint x is damaged: empty file", tmp_path / "x", "empty file")
    written = checkpoint._write_error(tmp_path / "x", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    again = pickle.loads(pickle.dumps(damaged))
    assert (str(again), again.path, again.reason) == (str(damaged), damaged.path, "empty file")
    again = pickle.loads(pickle.dumps(written))
    assert (type(again), str(again), again.errno) == (CheckpointWriteError, str(written), errno.ENOSPC)
