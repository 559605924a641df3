"""Config presets, CLI parsing and validation: bad values are rejected before anything compiles."""

import dataclasses
import subprocess
import sys

import pytest

from reppo_fast.config import PRESETS, Config, ConfigError, preset_config, validate
from reppo_fast.train import main, parse_args


def test_default_is_the_paper_dmc_setting():
    cfg = Config()
    assert (cfg.num_envs, cfg.num_steps, cfg.num_epochs, cfg.num_minibatches) == (1024, 128, 8, 64)
    assert cfg.batch_size == 2048
    assert (cfg.lr, cfg.max_grad_norm, cfg.gamma, cfg.lmbda) == (3e-4, 0.5, 0.99, 0.95)
    assert (cfg.num_bins, cfg.v_min, cfg.v_max, cfg.kl_target, cfg.alpha_init, cfg.beta_init) == \
        (151, 0.0, 150.0, 0.1, 0.01, 0.01)
    validate(cfg)


def test_presets_apply_and_cli_overrides_win(capsys):
    cfg, resume = parse_args(["--env", "Cartpole", "--preset", "cpu", "--num-envs", "16"])
    assert not resume
    assert cfg.env == "CartpoleBalance"
    assert "env: Cartpole -> CartpoleBalance" in capsys.readouterr().out
    assert cfg.num_envs == 16  # CLI over preset
    assert cfg.num_steps == PRESETS["cpu"]["num_steps"]  # preset over default
    assert preset_config("maniskill", "maniskill").v_min == -15.0
    assert preset_config("auto", "dmc") == dataclasses.replace(Config(), preset="dmc")


def test_maniskill_defaults_to_torch_and_a_cpu_preset_without_cuda(monkeypatch):
    import reppo_fast.config as config

    monkeypatch.setattr(config, "_cuda_available", lambda: False)
    cfg = preset_config("auto", "maniskill", env="PickCube-v1")
    assert (cfg.preset, cfg.framework, cfg.gamma, cfg.v_min, cfg.v_max) == ("maniskill_cpu", "torch", None, -15, 15)
    assert cfg.num_envs <= 16  # one process per env on CPU
    assert preset_config("cpu", "maniskill").preset == "maniskill_cpu"
    monkeypatch.setattr(config, "_cuda_available", lambda: True)
    assert preset_config("auto", "maniskill").num_envs == Config().num_envs
    validate(cfg)


@pytest.mark.parametrize("changes, field", [
    ({"num_envs": 3, "num_steps": 5, "num_minibatches": 4}, "num_minibatches"),
    ({"num_envs": 0}, "num_envs"),
    ({"num_epochs": -1}, "num_epochs"),
    ({"critic_hidden": 0}, "critic_hidden"),
    ({"gamma": 1.0}, "gamma"),
    ({"gamma": 0.0}, "gamma"),
    ({"lmbda": 1.5}, "lmbda"),
    ({"v_min": 10.0, "v_max": 0.0}, "v_min"),
    ({"framework": "tensorflow"}, "framework"),
    ({"kernels": "cuda"}, "backend"),
    ({"framework": "jax", "kernels": "triton"}, "backend"),
    ({"kernel_overrides": {"softmax": "reference"}}, "op"),
])
def test_invalid_values_name_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        validate(dataclasses.replace(Config(), **changes))


def test_divisibility_error_suggests_a_divisor():
    with pytest.raises(ConfigError, match=r"pick a divisor of 15 \(e.g. 3\)"):
        validate(dataclasses.replace(Config(), num_envs=3, num_steps=5, num_minibatches=4))


def test_cli_errors_are_one_line_and_exit_2(capsys):
    assert main(["--env", "HumanoidRunn"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "closest" in err and "HumanoidRun" in err
    assert main(["--env", "CartpoleBalance", "--gamma", "1.5"]) == 2
    assert "gamma" in capsys.readouterr().err


def test_help_lists_field_docs():
    out = subprocess.run([sys.executable, "-m", "reppo_fast.train", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--num-envs" in out.stdout and "Parallel environments" in out.stdout


def test_config_json_round_trip():
    cfg = dataclasses.replace(Config(), env="CartpoleBalance", kernel_overrides={"tanh_normal": "reference"})
    assert Config.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="unknown fields"):
        Config.from_json('{"not_a_field": 1}')
