"""Torch RPO through the runner on ToyPointMass (the JAX physics differentiated through
envs/jax_autograd.py): finite metrics, a checkpoint holding the target critics and optimiser slots for the
online critics only, and a resumed run identical to an uninterrupted one."""

import json

import numpy as np

from reppo_fast.checkpoint import list_checkpoints, load_checkpoint
from reppo_fast.config import Config
from reppo_fast.runner import run
from reppo_fast.train import main

TIME_KEYS = {"time/iteration_s", "time/elapsed_s", "time/env_steps_per_s", "wall_time"}
TINY = dict(env="ToyPointMass", framework="torch", algo="rpo", num_envs=4, num_steps=8, num_epochs=2,
            num_minibatches=2, actor_hidden=16, actor_hidden_blocks=2, critic_hidden=16,
            critic_hidden_blocks=2, rpo_epochs=2, episode_length=12, num_eval_envs=2, eval_interval=2,
            checkpoint_interval=2, progress=False)
STEPS = 4 * 8


def _cfg(tmp_path, name, iterations):
    return Config().replace(**TINY, total_steps=iterations * STEPS, run_dir=str(tmp_path / name))


def _records(path):
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS}
            for line in path.read_text().splitlines()]


def _last_checkpoint(run_dir):
    return load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])[0]


def test_torch_rpo_runs_with_finite_metrics_and_a_full_checkpoint(tmp_path):
    run_dir = run(_cfg(tmp_path, "a", 3))
    metrics = _records(run_dir / "metrics.jsonl")
    assert [m["iteration"] for m in metrics] == [1, 2, 3]
    assert all(np.isfinite(v) for m in metrics for v in m.values())
    for key in ("train/window_objective", "actor/surrogate", "actor/inside_fraction", "critic/loss",
                "actor/action_grad_norm", "actor/nonfinite_action_grads"):
        assert key in metrics[0], key
    assert all(m["actor/action_grad_norm"] > 0 for m in metrics)  # gradients came through the physics
    arrays = _last_checkpoint(run_dir)
    online = {k for k in arrays if k.startswith("critic.online.")}
    target = {k.replace(".target.", ".online.") for k in arrays if k.startswith("critic.target.")}
    assert online and online == target
    slots = {k.split(".")[1] for k in arrays if k.startswith("critic_opt.")}
    assert len(slots) == len(online)  # the optimiser trains the online critics only
    # the target critics moved towards the online ones, but are not them
    assert any(not np.array_equal(arrays[k], arrays[k.replace(".online.", ".target.")]) for k in online)
    assert any(k.startswith("env.") for k in arrays)


def test_torch_rpo_resume_reproduces_an_uninterrupted_run(tmp_path):
    full = run(_cfg(tmp_path, "full", 4))
    part = run(_cfg(tmp_path, "part", 2))
    assert main(["--resume", str(part), "--total-steps", str(4 * STEPS), "--no-progress"]) == 0
    assert _records(part / "metrics.jsonl") == _records(full / "metrics.jsonl")
    expected, got = _last_checkpoint(full), _last_checkpoint(part)
    assert set(got) == set(expected)
    for key in expected:
        assert np.array_equal(got[key], expected[key]), key
