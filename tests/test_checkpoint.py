"""Checkpoint files: exact round trip, atomic writes, retention."""

import json

import numpy as np
import pytest

from reppo_fast import checkpoint
from reppo_fast.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"a": rng.normal(size=(3, 5)).astype(np.float32), "key": np.array([7, 9], np.uint32),
              "flag": np.array([True, False]), "['x'].y": np.float32(2.5)}
    meta = {"iteration": 12, "elapsed": 3.5, "last_eval": None}
    path = save_checkpoint(tmp_path, 12, arrays, meta)
    got, got_meta = load_checkpoint(path)
    assert got_meta == {**meta, "format": checkpoint.FORMAT}
    assert set(got) == set(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == np.asarray(v).dtype and np.array_equal(got[k], v)


def test_atomic_write_leaves_no_temp_files_and_keeps_newest(tmp_path):
    for it in range(1, 6):
        save_checkpoint(tmp_path, it, {"x": np.full(3, it)}, {"iteration": it}, keep=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == [f"ckpt_{i:08d}.npz" for i in (3, 4, 5)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    assert load_checkpoint(list_checkpoints(tmp_path)[-1])[1]["iteration"] == 5


def test_a_checkpoint_of_another_format_is_refused(tmp_path):
    path = checkpoint.save_checkpoint(tmp_path, 1, {"w": np.ones(2)}, {"iteration": 1})
    assert checkpoint.load_checkpoint(path)[1]["format"] == checkpoint.FORMAT
    data = dict(np.load(path))
    meta = json.loads(data.pop("__meta__").tobytes().decode())
    np.savez(path, **data, __meta__=np.frombuffer(json.dumps({**meta, "format": 99}).encode(), np.uint8))
    refused = f"format 99.*reads format {checkpoint.FORMAT}"
    with pytest.raises(checkpoint.CheckpointFormatError, match=refused):
        checkpoint.load_checkpoint(path)
