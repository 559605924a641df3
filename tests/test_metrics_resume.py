"""Metrics after a kill and a resume: every iteration logged exactly once, in order, in the JSONL files and in
the TensorBoard event files (read back by reppo_fast.tb_events, checked against tensorboardX itself)."""

import json

import numpy as np
import pytest
from tensorboardX import SummaryWriter

from reppo_fast.algorithm import EvalResult
from reppo_fast.metrics import MetricsLogger
from reppo_fast.tb_events import event_files, events, scalars, truncate_events

STEPS = 100  # env steps per iteration


def _value(segment, iteration):
    """Differs between the segments of a run, so the test can tell which one logged an iteration; exact in
    float32, which TensorBoard stores."""
    return 1000.0 * segment + iteration


def _log(run_dir, segment, iterations, resume=None, tensorboard=True):
    logger = MetricsLogger(run_dir, resume=resume, tensorboard=tensorboard)
    for i in iterations:
        logger.log(i, STEPS * i, {"loss": _value(segment, i), "kl": -_value(segment, i)})
        if i % 2 == 0:
            logger.log_eval(i, STEPS * i, EvalResult(_value(segment, i), 0.5), wall_time=float(i))
    logger.close()


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check(run_dir, segment_of):
    """Iterations 1..N (N = len(segment_of)) each once, in order, with the value of the segment that logged
    it last: segment_of[i - 1]."""
    last = len(segment_of)
    metrics = _jsonl(run_dir / "metrics.jsonl")
    assert [m["iteration"] for m in metrics] == list(range(1, last + 1))
    assert [m["loss"] for m in metrics] == [_value(s, i) for i, s in enumerate(segment_of, 1)]
    evals = _jsonl(run_dir / "eval.jsonl")
    assert [e["iteration"] for e in evals] == list(range(2, last + 1, 2))
    assert [e["eval/return"] for e in evals] == [_value(segment_of[i - 1], i) for i in range(2, last + 1, 2)]

    tb = scalars(run_dir / "tb")
    assert set(tb) == {"loss", "kl", "eval/return", "eval/return_stderr"}
    expect = [(STEPS * i, _value(s, i)) for i, s in enumerate(segment_of, 1)]
    assert tb["loss"] == expect
    assert tb["kl"] == [(step, -v) for step, v in expect]
    assert tb["eval/return"] == expect[1::2]
    assert tb["eval/return_stderr"] == [(step, 0.5) for step, _ in expect[1::2]]
    for path in event_files(run_dir / "tb"):  # every file still opens with its header
        assert next(events(path)).file_version


def test_resume_logs_each_iteration_once(tmp_path):
    _log(tmp_path, 1, range(1, 11))
    _log(tmp_path, 2, range(7, 13), resume=(6, 6 * STEPS))
    _check(tmp_path, [1] * 6 + [2] * 6)
    assert len(event_files(tmp_path / "tb")) == 2  # the resume did not reopen (and empty) the first file


@pytest.mark.parametrize("chop", [1, 4, 9, 30])
def test_resume_after_a_kill_mid_write(tmp_path, chop):
    """A killed run leaves a cut final event record and a partial last JSONL line."""
    _log(tmp_path, 1, range(1, 11))
    (first,) = event_files(tmp_path / "tb")
    first.write_bytes(first.read_bytes()[:-chop])
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"iteration": 11, "env_steps": 11')
    with (tmp_path / "eval.jsonl").open("a") as f:
        f.write('{"itera')
    _log(tmp_path, 2, range(7, 13), resume=(6, 6 * STEPS))
    _check(tmp_path, [1] * 6 + [2] * 6)


def test_resume_from_an_older_checkpoint_twice(tmp_path):
    """The newest checkpoint was damaged: a second resume goes back further than the first one did."""
    _log(tmp_path, 1, range(1, 11))
    _log(tmp_path, 2, range(7, 9), resume=(6, 6 * STEPS))
    _log(tmp_path, 3, range(5, 13), resume=(4, 4 * STEPS))
    _check(tmp_path, [1] * 4 + [3] * 8)


def test_resume_without_tensorboard_still_truncates_the_event_files(tmp_path):
    _log(tmp_path, 1, range(1, 11))
    _log(tmp_path, 2, range(7, 9), resume=(6, 6 * STEPS), tensorboard=False)
    assert [step for step, _ in scalars(tmp_path / "tb")["loss"]] == [STEPS * i for i in range(1, 7)]


def _tensorboardx_run(tb_dir, rng):
    """Scalars (and a histogram and a text, which are no scalars) written by tensorboardX; returns what it
    wrote as float32, which is what an event file stores."""
    written = {}
    writer = SummaryWriter(str(tb_dir))
    for step in range(0, 50, 3):
        for tag in ("a", "group/b", "group/c d"):
            if tag == "group/b" and step % 2:
                continue
            value = float(rng.normal() * 10.0 ** rng.integers(-5, 5))
            writer.add_scalar(tag, value, step)
            written.setdefault(tag.replace(" ", "_"), []).append((step, float(np.float32(value))))
        writer.add_histogram("hist", rng.normal(size=10), step)
    writer.add_text("note", "not a scalar", 7)
    writer.close()
    return written


def test_reader_matches_what_tensorboardx_wrote(tmp_path):
    written = _tensorboardx_run(tmp_path, np.random.default_rng(0))
    assert scalars(tmp_path) == written


def test_reader_stops_at_a_corrupt_record(tmp_path):
    """The data CRC is checked: a flipped byte in the last record (the text) ends the file there, and a
    flipped byte earlier ends it at that record."""
    written = _tensorboardx_run(tmp_path, np.random.default_rng(1))
    (path,) = event_files(tmp_path)
    blob = bytearray(path.read_bytes())
    blob[-6] ^= 0xFF
    path.write_bytes(bytes(blob))
    assert scalars(tmp_path) == written
    assert not any(e.summary.value and e.summary.value[0].tag.startswith("note") for e in events(path))
    # one of the first scalars: only the header and the events before it remain
    first_a = bytes(blob).index(b"\n\x01a")
    blob[first_a + 4] ^= 0xFF
    path.write_bytes(bytes(blob))
    assert scalars(tmp_path) == {}


def test_truncate_keeps_the_header_and_early_non_scalar_events(tmp_path):
    _tensorboardx_run(tmp_path, np.random.default_rng(2))
    (path,) = event_files(tmp_path)
    truncate_events(tmp_path, 10)
    kept = list(events(path))
    assert kept[0].file_version
    assert max(e.step for e in kept) <= 10
    assert any(v.tag == "hist" for e in kept for v in e.summary.value)
    assert {tag: [s for s, _ in pts] for tag, pts in scalars(tmp_path).items()} == {
        "a": [0, 3, 6, 9], "group/b": [0, 6], "group/c_d": [0, 3, 6, 9]}
    mtime = path.stat().st_mtime_ns
    truncate_events(tmp_path, 10)  # nothing left to drop: the file is not rewritten
    assert path.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
