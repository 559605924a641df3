"""RPO through the runner on the toy env (seconds, CPU): it trains with finite losses and logs its own
metrics, resumes exactly like the other algorithms (tests/on_jax/test_resume.py), and its float64 physics
(`--rpo-float64`, which turns on x64 for the whole process, hence a subprocess) trains too."""

import json
import subprocess
import sys

import numpy as np

from reppo_fast.checkpoint import list_checkpoints, load_checkpoint
from reppo_fast.config import Config
from reppo_fast.runner import run
from reppo_fast.train import main

TIME_KEYS = {"time/iteration_s", "time/elapsed_s", "time/env_steps_per_s", "wall_time"}
# Episodes of 10 steps: each 8-step window holds episode ends, so the gradient cut runs too.
TINY = dict(env="ToyPointMass", algo="rpo", num_envs=8, num_steps=8, num_epochs=2, num_minibatches=2,
            actor_hidden=16, critic_hidden=16, critic_hidden_blocks=2, rpo_epochs=2, lr=2e-3,
            max_grad_norm=1.0, episode_length=10, num_eval_envs=4, eval_interval=2, checkpoint_interval=2,
            progress=False)
RPO_METRICS = {"actor/nonfinite_action_grads", "actor/action_grad_norm", "actor/loss", "actor/surrogate",
               "actor/kl", "actor/inside_fraction", "critic/loss", "train/window_objective"}


def _cfg(tmp_path, name, iterations):
    return Config().replace(**TINY, total_steps=iterations * 64, run_dir=str(tmp_path / name))


def _records(path):
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS}
            for line in path.read_text().splitlines()]


def test_rpo_trains_and_resumes_exactly(tmp_path):
    """Four iterations straight: every RPO metric is logged and finite, no action-gradient was non-finite,
    the window objective is positive (rewards of the toy are in [0, 1], V_target starts near 0), and the
    checkpoint carries the target critics and the log std. Two, then resumed to four: the same metrics and
    bit-identical final state (parameters, optimisers, normaliser, env states, key)."""
    full = run(_cfg(tmp_path, "full", 4))
    metrics = _records(full / "metrics.jsonl")
    assert [m["iteration"] for m in metrics] == [1, 2, 3, 4]
    for m in metrics:
        assert RPO_METRICS <= set(m), RPO_METRICS - set(m)
        assert all(np.isfinite(v) for v in m.values()), m
        assert m["actor/nonfinite_action_grads"] == 0 and m["train/window_objective"] > 0
    assert any(m["train/episodes"] > 0 for m in metrics)
    a, meta = load_checkpoint(list_checkpoints(full / "checkpoints")[-1])
    assert meta["iteration"] == 4
    assert any("['target']" in k for k in a) and any("['log_std']" in k for k in a)

    part = run(_cfg(tmp_path, "part", 2))
    assert main(["--resume", str(part), "--total-steps", str(4 * 64), "--no-progress"]) == 0
    assert _records(part / "metrics.jsonl") == metrics
    b, _ = load_checkpoint(list_checkpoints(part / "checkpoints")[-1])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_rpo_float64_physics_trains_in_a_subprocess(tmp_path):
    """`--rpo-float64` (x64 on before the env is built; a subprocess, since x64 is process-wide): two
    iterations with finite metrics; the toy's physics state in the checkpoint is float64, the networks
    float32."""
    run_dir = tmp_path / "f64"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k != "progress"]
    cmd = [sys.executable, "-m", "reppo_fast.train", *args, "--total-steps", str(2 * 64), "--no-progress",
           "--rpo-float64", "--run-dir", str(run_dir)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = _records(run_dir / "metrics.jsonl")
    assert [m["iteration"] for m in metrics] == [1, 2]
    assert all(np.isfinite(v) for m in metrics for v in m.values())
    arrays, _ = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])
    qpos = [v for k, v in arrays.items() if k.startswith(".rollout.env.raw") and "qpos" in k]
    assert qpos and all(v.dtype == np.float64 for v in qpos)
    assert all(v.dtype == np.float32 for k, v in arrays.items() if k.startswith(".actor["))
