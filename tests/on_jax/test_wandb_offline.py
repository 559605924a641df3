"""A real offline Weights & Biases run (no network, no login): a tiny ToyPointMass run with `--wandb-project
test --wandb-mode offline` leaves an offline run in RUN_DIR/wandb/ whose history holds the scalars of
metrics.jsonl and eval.jsonl at env steps, and a resume continues the same W&B run."""

import json
import struct
from pathlib import Path

import pytest

from reppo_fast import tracking
from reppo_fast.train import main

pytest.importorskip("wandb", reason="the wandb extra: pip install 'reppo_fast[wandb]'")

TINY = ["--env", "ToyPointMass", "--num-envs", "8", "--num-steps", "8", "--num-epochs", "2",
        "--num-minibatches", "2", "--actor-hidden", "16", "--critic-hidden", "16", "--num-bins", "21",
        "--num-eval-envs", "4", "--eval-interval", "2", "--checkpoint-interval", "2", "--no-progress"]
STEPS = 64  # env steps per iteration


def _records(path: Path):
    """The protobuf records of a .wandb file: wandb's LevelDB-style log (a 7-byte file header, then 32 KiB
    blocks of chunks, each with a 7-byte header: CRC, length, type; FULL = 1 and LAST = 4 end a record)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, buf = path.read_bytes(), 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


def _history(run_file: Path) -> dict[int, dict]:
    """W&B step -> the row logged at it, without wandb's own keys (_step, _runtime, _timestamp)."""
    rows = {}
    for record in _records(run_file):
        if record.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                     for item in record.history.item}
            rows[record.history.step.num] = {k: v for k, v in items.items() if not k.startswith("_")}
    return rows


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network, no login and no files outside tmp_path: wandb's config and cache live there."""
    for name in ("WANDB_DIR", "WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home" / name.lower()))


def test_offline_run_holds_the_metrics_and_resumes_the_same_run(tmp_path, offline, capsys):
    run_dir = tmp_path / "run"
    wandb_args = ["--wandb-project", "test", "--wandb-mode", "offline"]
    assert main([*TINY, "--run-dir", str(run_dir), "--total-steps", str(3 * STEPS), *wandb_args]) == 0
    run_id = (run_dir / tracking.ID_FILE).read_text().strip()
    [first] = _offline_runs(run_dir)
    assert first.name == f"run-{run_id}.wandb"
    history = _history(first)
    metrics, evals = _jsonl(run_dir / "metrics.jsonl"), _jsonl(run_dir / "eval.jsonl")
    assert sorted(history) == [m["env_steps"] for m in metrics] == [STEPS, 2 * STEPS, 3 * STEPS]
    for m in metrics:
        row = history[m.pop("env_steps")]
        assert {k: row[k] for k in m} == m  # every scalar of metrics.jsonl, `iteration` too, same values
    for e in evals:
        row = history[e["env_steps"]]
        assert (row["eval/return"], row["eval/return_stderr"]) == (e["eval/return"], e["eval/return_stderr"])
    kinds = [r.WhichOneof("record_type") for r in _records(first)]
    assert "exit" in kinds  # wandb.finish ran
    config = next(r.run.config for r in _records(first) if r.WhichOneof("record_type") == "run")
    saved = {item.key: json.loads(item.value_json) for item in config.update}
    assert saved["reppo"] == json.loads((run_dir / "config.json").read_text())["reppo"]

    # The resume continues the same W&B run (offline: a second run file with the same id).
    assert main(["--resume", str(run_dir), "--total-steps", str(5 * STEPS), "--no-progress"]) == 0
    assert (run_dir / tracking.ID_FILE).read_text().strip() == run_id
    runs = _offline_runs(run_dir)
    assert len(runs) == 2 and all(r.name == f"run-{run_id}.wandb" for r in runs)
    second = next(r for r in runs if r != first)
    assert sorted(_history(second)) == [4 * STEPS, 5 * STEPS]
    assert "Traceback" not in capsys.readouterr().err
