"""The torch path end to end on CPU: runs, compiles, checkpoints and resumes exactly, and learns like JAX."""

import json

import numpy as np
import pytest

from reppo_fast.checkpoint import list_checkpoints, load_checkpoint
from reppo_fast.config import Config, preset_config
from reppo_fast.runner import run
from reppo_fast.train import main

TIME_KEYS = {"time/iteration_s", "time/elapsed_s", "time/env_steps_per_s", "wall_time"}
TINY = dict(env="ToyPointMass", framework="torch", num_envs=8, num_steps=8, num_epochs=2, num_minibatches=2,
            actor_hidden=16, actor_hidden_blocks=2, critic_hidden=16, num_bins=21, v_min=0.0, v_max=100.0,
            num_eval_envs=4, eval_interval=2, checkpoint_interval=2, progress=False)


def _cfg(tmp_path, name, iterations, **kw):
    return Config().replace(**{**TINY, **kw}, total_steps=iterations * 64,
                            run_dir=str(tmp_path / name))


def _records(path):
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS}
            for line in path.read_text().splitlines()]


def test_torch_run_writes_finite_metrics_and_a_full_checkpoint(tmp_path):
    run_dir = run(_cfg(tmp_path, "a", 3))
    metrics = _records(run_dir / "metrics.jsonl")
    assert [m["iteration"] for m in metrics] == [1, 2, 3]
    assert all(np.isfinite(v) for m in metrics for v in m.values())
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["framework"] == "torch" and meta["compiled"] is False  # auto: eager on CPU
    arrays, _ = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])
    for part in ("actor.log_alpha", "actor.log_beta", "critic.zero_dist", "actor_opt.0.exp_avg",
                 "critic_opt.0.exp_avg_sq", "norm.mean", "generator", "iteration"):
        assert part in arrays, part
    assert any(k.startswith("env.") for k in arrays)


def test_torch_resume_reproduces_an_uninterrupted_run(tmp_path):
    full = run(_cfg(tmp_path, "full", 6))
    part = run(_cfg(tmp_path, "part", 3))
    assert main(["--resume", str(part), "--total-steps", str(6 * 64), "--no-progress"]) == 0
    assert _records(part / "metrics.jsonl") == _records(full / "metrics.jsonl")


def test_compiled_update_matches_eager(tmp_path):
    """torch.compile on CPU: the same losses as eager for a few updates (inductor may reorder float
    sums, so within float32 tolerance rather than bit-exact)."""
    eager = _records(run(_cfg(tmp_path, "eager", 2, compile="off")) / "metrics.jsonl")
    compiled_dir = run(_cfg(tmp_path, "compiled", 2, compile="on"))
    assert json.loads((compiled_dir / "meta.json").read_text())["compiled"] is True
    compiled = _records(compiled_dir / "metrics.jsonl")
    for e, c in zip(eager, compiled, strict=True):
        for key in ("critic/loss", "actor/loss", "actor/kl", "critic/ce"):
            np.testing.assert_allclose(c[key], e[key], rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_torch_and_jax_learn_the_toy_task_alike(tmp_path):
    """Statistical check: 3 seeds per framework on ToyPointMass; both beat random (~22) by far and
    their mean final eval returns differ by less than 3 pooled standard deviations + 5."""
    finals = {}
    for framework in ("jax", "torch"):
        finals[framework] = []
        for seed in range(3):
            cfg = preset_config(
                "cpu", "toy", env="ToyPointMass", progress=False, framework=framework,
                seed=seed, num_envs=32, num_steps=16, episode_length=None, total_steps=32 * 16 * 60,
                eval_interval=60, run_dir=str(tmp_path / f"{framework}{seed}"))
            finals[framework].append(json.loads(
                (run(cfg) / "eval.jsonl").read_text().splitlines()[-1])["eval/return"])
    j, t = np.array(finals["jax"]), np.array(finals["torch"])
    assert j.mean() > 50 and t.mean() > 50, finals
    pooled = np.sqrt((j.var(ddof=1) + t.var(ddof=1)) / 2)
    assert abs(j.mean() - t.mean()) < 3 * pooled + 5, finals


@pytest.mark.slow
def test_torch_cartpole_balance_reaches_900_with_the_cpu_preset(tmp_path):
    """The JAX learning test's twin (zero-action return ~700, random ~355)."""
    cfg = preset_config("cpu", "dmc", env="CartpoleBalance", framework="torch",
                        run_dir=str(tmp_path / "cartpole"), progress=False)
    evals = [json.loads(line)["eval/return"] for line in (run(cfg) / "eval.jsonl").read_text().splitlines()]
    assert max(evals) >= 900, evals
    assert evals[-1] >= 800, evals
