"""Run directory, checkpoints and exact resume of the JAX path on the toy env (seconds, CPU)."""

import json

import numpy as np
import pytest

from reppo_fast.checkpoint import list_checkpoints, load_checkpoint
from reppo_fast.config import Config
from reppo_fast.runner import RunDirError, run
from reppo_fast.train import main

TIME_KEYS = {"time/iteration_s", "time/elapsed_s", "time/env_steps_per_s", "wall_time"}
TINY = dict(env="ToyPointMass", num_envs=8, num_steps=8, num_epochs=2, num_minibatches=2, actor_hidden=16,
            actor_hidden_blocks=2, critic_hidden=16, num_bins=21, v_min=0.0, v_max=100.0, num_eval_envs=4,
            eval_interval=2, checkpoint_interval=2, progress=False)


def _cfg(tmp_path, name, iterations):
    return Config().replace(**TINY, total_steps=iterations * 64, run_dir=str(tmp_path / name))


def _records(path):
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS}
            for line in path.read_text().splitlines()]


def test_run_dir_contents(tmp_path):
    run_dir = run(_cfg(tmp_path, "a", 3))
    assert Config.from_json((run_dir / "config.json").read_text()) == _cfg(tmp_path, "a", 3)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["kernels"] == {"tanh_normal": "reference", "hl_gauss_ce": "reference",
                               "lambda_returns": "reference"}
    metrics = _records(run_dir / "metrics.jsonl")
    assert [m["iteration"] for m in metrics] == [1, 2, 3]
    assert all(np.isfinite(v) for m in metrics for v in m.values())
    assert [e["iteration"] for e in _records(run_dir / "eval.jsonl")] == [2, 3]
    assert list((run_dir / "tb").iterdir())
    arrays, ckpt_meta = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])
    assert ckpt_meta["iteration"] == 3
    # the checkpoint carries optimiser state, normaliser statistics, multipliers, RNG and env state
    for part in (".actor_opt", ".rollout.norm.mean", "['log_alpha']", "['log_beta']", ".key",
                 ".rollout.env.raw", ".iteration"):
        assert any(part in name for name in arrays), part
    with pytest.raises(RunDirError, match="--resume"):
        run(_cfg(tmp_path, "a", 3))


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    full = run(_cfg(tmp_path, "full", 6))
    part = run(_cfg(tmp_path, "part", 3))
    # A killed run may have logged past its last checkpoint: those lines must be redone, not kept.
    with (part / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"iteration": 4, "env_steps": 256, "stale": 1.0}) + "\n")
    assert main(["--resume", str(part), "--total-steps", str(6 * 64), "--no-progress"]) == 0
    assert _records(part / "metrics.jsonl") == _records(full / "metrics.jsonl")
    # the first segment also evaluated at its own end (iteration 3): an extra point, not a difference
    full_evals = _records(full / "eval.jsonl")
    at = {e["iteration"] for e in full_evals}
    assert [e for e in _records(part / "eval.jsonl") if e["iteration"] in at] == full_evals
    a, _ = load_checkpoint(list_checkpoints(full / "checkpoints")[-1])
    b, _ = load_checkpoint(list_checkpoints(part / "checkpoints")[-1])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_refuses_config_changes(tmp_path, capsys):
    part = run(_cfg(tmp_path, "r", 2))
    assert main(["--resume", str(part), "--lr", "0.1"]) == 2
    assert "cannot change lr" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path / "nothing")]) == 2


def test_interrupt_saves_a_checkpoint(tmp_path, monkeypatch):
    """Ctrl-C mid-run: the work done so far is checkpointed and the resume command printed."""
    from reppo_fast.on_jax import trainer as jt

    cfg = _cfg(tmp_path, "int", 10)
    real_eval = jt.Trainer.evaluate

    def eval_then_interrupt(self, state, seed, iteration):
        if iteration >= 4:
            raise KeyboardInterrupt
        return real_eval(self, state, seed, iteration)

    monkeypatch.setattr(jt.Trainer, "evaluate", eval_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(cfg.replace(checkpoint_interval=100))
    _, meta = load_checkpoint(list_checkpoints(tmp_path / "int" / "checkpoints")[-1])
    assert meta["iteration"] == 4
