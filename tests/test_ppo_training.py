"""PPO through the shared host loop on both paths: metrics, checkpoints and exact resume; learning on CPU."""

import json

import numpy as np
import pytest

from reppo_fast import train
from reppo_fast.config import Config, ConfigError, preset_config, validate
from reppo_fast.runner import run
from reppo_fast.train import main, parse_args

TIME_KEYS = {"time/iteration_s", "time/elapsed_s", "time/env_steps_per_s", "wall_time"}
TINY = dict(env="ToyPointMass", algo="ppo", num_envs=8, num_steps=8, num_epochs=2, num_minibatches=2,
            actor_hidden=16, actor_hidden_blocks=2, critic_hidden=16, critic_hidden_blocks=2, num_eval_envs=4,
            eval_interval=2, checkpoint_interval=2, progress=False, gamma=0.99)


def _cfg(tmp_path, name, iterations, **kw):
    return Config().replace(**{**TINY, **kw}, total_steps=iterations * 64,
                            run_dir=str(tmp_path / name))


def _records(path):
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS}
            for line in path.read_text().splitlines()]


def _evals(run_dir):
    return [json.loads(line)["eval/return"] for line in (run_dir / "eval.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("policy_std", ["state", "scalar"])
@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_ppo_resume_reproduces_an_uninterrupted_run(tmp_path, framework, policy_std):
    """Both policy std forms: the checkpoint holds std_param only under `scalar`, and the resumed run's
    config (policy_std included) comes from the checkpoint's run directory."""
    full = run(_cfg(tmp_path, "full", 6, framework=framework, policy_std=policy_std))
    part = run(_cfg(tmp_path, "part", 3, framework=framework, policy_std=policy_std))
    assert main(["--resume", str(part), "--total-steps", str(6 * 64), "--no-progress"]) == 0
    records = _records(full / "metrics.jsonl")
    assert _records(part / "metrics.jsonl") == records
    logged = {"actor/policy_loss", "critic/value_loss", "actor/entropy", "actor/clip_fraction"}
    assert logged <= set(records[0])
    assert all(np.isfinite(v) for r in records for v in r.values())
    saved = json.loads((full / "config.json").read_text())
    assert saved["algo"] == "ppo"
    assert saved["ppo"]["policy_std"] == policy_std


def test_algo_ppo_takes_the_brax_dmc_preset(monkeypatch):
    monkeypatch.setattr(train, "_jax_accelerator", lambda: True)  # `auto` on a GPU: the paper's setting
    cfg, _ = parse_args(["--env", "CartpoleBalance", "--algo", "ppo"])
    # mujoco_playground's brax_ppo_config for DM Control, Brax's make_ppo_networks defaults.
    assert (cfg.algo, cfg.preset, cfg.num_envs, cfg.num_epochs, cfg.num_minibatches, cfg.lr, cfg.gamma) == \
        ("ppo", "dmc", 2048, 16, 32, 1e-3, 0.995)
    assert (cfg.ppo.entropy_coef, cfg.ppo.reward_scaling, cfg.actor_hidden, cfg.actor_hidden_blocks,
            cfg.critic_hidden, cfg.critic_hidden_blocks, cfg.max_grad_norm, cfg.ppo.policy_std) == \
        (1e-2, 10.0, 32, 4, 256, 5, None, "state")  # Brax's tanh_normal policy: a state-dependent std
    assert cfg.num_envs * cfg.num_steps // cfg.num_minibatches == 1024 * 30  # Brax's minibatch
    cpu, _ = parse_args(["--env", "CartpoleBalance", "--algo", "ppo", "--preset", "cpu", "--lr", "3e-4"])
    assert (cpu.algo, cpu.preset, cpu.lr, cpu.critic_hidden_blocks) == ("ppo", "cpu", 3e-4, 2)


def test_missing_presets_and_the_old_ppo_preset_names_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"no 'maniskill' preset for --algo ppo; .*dmc \(reppo, ppo, rpo\)"):
        preset_config("maniskill", "maniskill", "ppo")
    with pytest.raises(ConfigError, match="--algo ppo --preset dmc"):
        preset_config("ppo", "dmc", "reppo")
    with pytest.raises(ConfigError, match="--algo ppo --preset cpu"):
        preset_config("ppo_cpu", "dmc", "ppo")
    with pytest.raises(ConfigError, match="algo"):
        validate(Config().replace(algo="sac"))
    with pytest.raises(ConfigError, match="no 'maniskill' preset for --algo ppo"):
        validate(Config().replace(algo="ppo", preset="maniskill"))


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_ppo_cartpole_balance_reaches_900_with_the_cpu_preset(tmp_path, framework):
    """Zero-action return ~700, random ~355: 900 is learned behaviour."""
    cfg = preset_config("cpu", "dmc", "ppo", env="CartpoleBalance", framework=framework,
                        run_dir=str(tmp_path / "cartpole"), progress=False)
    evals = _evals(run(cfg))
    assert max(evals) >= 900, evals
