"""Issue 16, items 5-7 through the runner: a damaged newest checkpoint is skipped (and set aside) and the run
resumes from the newest valid one, logging every iteration once; with none valid, one line; a checkpoint
that cannot be written (a full disk) warns and is retried at the next interval, or, the final one, ends the
run with one line naming the last checkpoint written; nothing half-written is left behind."""

import errno
import json

import numpy as np

from reppo_fast import checkpoint as ckpt_module
from reppo_fast import runner
from reppo_fast.checkpoint import list_checkpoints, load_checkpoint
from reppo_fast.config import Config
from reppo_fast.runner import run
from reppo_fast.tb_events import scalars
from reppo_fast.train import main

TIME_KEYS = {"time/iteration_s", "time/elapsed_s", "time/env_steps_per_s"}
TINY = dict(env="ToyPointMass", num_envs=8, num_steps=8, num_epochs=2, num_minibatches=2, actor_hidden=16,
            actor_hidden_blocks=1, critic_hidden=16, num_bins=21, v_min=0.0, v_max=100.0, num_eval_envs=2,
            eval_interval=100, checkpoint_interval=2, progress=False)


def _cfg(tmp_path, name, iterations):
    return Config().replace(**TINY, total_steps=iterations * 64, run_dir=str(tmp_path / name))


def _records(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_resume_skips_a_damaged_newest_checkpoint_and_continues_exactly(tmp_path, capsys):
    full = run(_cfg(tmp_path, "full", 8))
    part = run(_cfg(tmp_path, "part", 6))  # checkpoints 2, 4, 6
    newest = list_checkpoints(part / "checkpoints")[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a node died mid-copy
    capsys.readouterr()
    assert main(["--resume", str(part), "--total-steps", str(8 * 64), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "skipping damaged checkpoint ckpt_00000006.npz (truncated" in out
    assert "resuming" in out and "at iteration 4" in out
    assert (part / "checkpoints" / "ckpt_00000006.npz.damaged").exists()  # kept for a look, out of the way
    assert [r["iteration"] for r in _records(part)] == list(range(1, 9))
    assert _records(part) == _records(full)
    tb = {tag: pts for tag, pts in scalars(part / "tb").items() if tag not in TIME_KEYS}
    assert tb == {tag: pts for tag, pts in scalars(full / "tb").items() if tag not in TIME_KEYS}
    a, _ = load_checkpoint(list_checkpoints(full / "checkpoints")[-1])
    b, _ = load_checkpoint(list_checkpoints(part / "checkpoints")[-1])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_with_every_checkpoint_damaged_is_one_line(tmp_path, capsys):
    part = run(_cfg(tmp_path, "part", 4))
    for path in list_checkpoints(part / "checkpoints"):
        path.write_bytes(b"\0" * path.stat().st_size)
    capsys.readouterr()
    assert main(["--resume", str(part)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged" in err[0] and "start a new run" in err[0], err


def _full_disk_at(monkeypatch, iterations: set[int]):
    """save_checkpoint runs out of space part-way through writing the checkpoints of `iterations`."""
    real_save, real_savez = ckpt_module.save_checkpoint, ckpt_module.np.savez

    def savez_then_full(f, **arrays):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    def save(directory, iteration, arrays, meta, **kw):
        if iteration in iterations:
            monkeypatch.setattr(ckpt_module.np, "savez", savez_then_full)
        try:
            return real_save(directory, iteration, arrays, meta, **kw)
        finally:
            monkeypatch.setattr(ckpt_module.np, "savez", real_savez)

    monkeypatch.setattr(runner, "save_checkpoint", save)


def test_a_full_disk_at_a_periodic_checkpoint_warns_and_retries_at_the_next(tmp_path, monkeypatch, capsys):
    _full_disk_at(monkeypatch, {4})
    run_dir = run(_cfg(tmp_path, "disk", 8))
    err = capsys.readouterr().err
    assert "warning: could not write checkpoint" in err and "ckpt_00000004.npz" in err
    assert "No space left on device" in err and "tries again at iteration 6" in err
    assert "ckpt_00000002.npz" in err  # the last one written
    files = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert files == ["ckpt_00000002.npz", "ckpt_00000006.npz", "ckpt_00000008.npz"]  # nothing half-written
    assert [r["iteration"] for r in _records(run_dir)] == list(range(1, 9))


def test_a_full_disk_at_the_final_checkpoint_is_one_line_naming_the_last_written(tmp_path, monkeypatch,
                                                                                capsys):
    _full_disk_at(monkeypatch, {7})
    cfg = _cfg(tmp_path, "final", 7)
    assert main(["--env", "ToyPointMass", "--run-dir", cfg.run_dir, "--total-steps", str(cfg.total_steps),
                 *[f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k not in ("env", "progress")],
                 "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: could not write checkpoint"), err
    assert "ckpt_00000007.npz" in err[0] and "the last checkpoint written is ckpt_00000006.npz" in err[0]
    assert "--resume" in err[0]
    files = sorted(p.name for p in (tmp_path / "final" / "checkpoints").iterdir())
    assert files == ["ckpt_00000002.npz", "ckpt_00000004.npz", "ckpt_00000006.npz"]


def test_resume_with_a_damaged_config_is_one_line(tmp_path, capsys):
    part = run(_cfg(tmp_path, "cfg", 2))
    (part / "config.json").write_text('{"env": "ToyPointMass", "num_en')
    capsys.readouterr()
    assert main(["--resume", str(part)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.json is not valid JSON" in err[0], err
