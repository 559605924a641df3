"""Config groups, presets, CLI parsing, saved configs and validation: bad values are rejected before
anything compiles."""

import dataclasses
import json
import subprocess
import sys

import pytest

from reppo_fast import train
from reppo_fast.config import GROUPS, PRESETS, Config, ConfigError, flat_names, preset_config, validate
from reppo_fast.train import main, parse_args


def test_default_is_the_paper_dmc_setting():
    cfg = Config()
    assert (cfg.num_envs, cfg.num_steps, cfg.num_epochs, cfg.num_minibatches) == (1024, 128, 8, 64)
    assert cfg.batch_size == 2048
    assert (cfg.lr, cfg.max_grad_norm, cfg.gamma, cfg.lmbda) == (3e-4, 0.5, 0.99, 0.95)
    r = cfg.reppo
    assert (r.num_bins, r.v_min, r.v_max, r.kl_target, r.alpha_init, r.beta_init) == \
        (151, 0.0, 150.0, 0.1, 0.01, 0.01)
    validate(cfg)


def test_field_names_are_unique_across_the_groups():
    names = flat_names()
    assert len(names) == len(set(names))
    assert not set(names) & set(GROUPS)


def test_replace_routes_flat_names_to_their_group():
    cfg = Config().replace(kl_target=0.2, clip_eps=0.3, compile="off", num_envs=8)
    assert (cfg.reppo.kl_target, cfg.ppo.clip_eps, cfg.torch.compile, cfg.num_envs) == (0.2, 0.3, "off", 8)
    assert Config().reppo.kl_target == 0.1  # a copy: the default is untouched
    assert cfg.flat()["kl_target"] == 0.2 and set(cfg.flat()) == set(flat_names())
    with pytest.raises(ConfigError, match=r"unknown config field 'kl_targt'; closest: kl_target"):
        Config().replace(kl_targt=0.2)


def test_presets_apply_and_cli_overrides_win(capsys):
    cfg, resume = parse_args(["--env", "Cartpole", "--preset", "cpu", "--num-envs", "16"])
    assert not resume
    assert cfg.env == "CartpoleBalance"
    assert "env: Cartpole -> CartpoleBalance" in capsys.readouterr().out
    assert cfg.num_envs == 16  # CLI over preset
    assert cfg.num_steps == PRESETS["cpu", "reppo"]["num_steps"]  # preset over default
    assert (cfg.algo, cfg.preset) == ("reppo", "cpu")
    assert preset_config("maniskill", "maniskill").reppo.v_min == -15.0
    assert preset_config("auto", "dmc", gpu=True) == Config().replace(preset="dmc", **PRESETS["dmc", "reppo"])


def test_group_fields_are_flat_flags():
    cfg, _ = parse_args(["--env", "CartpoleBalance", "--framework", "torch", "--kl-target", "0.2",
                         "--kl-estimator", "analytic", "--clip-eps", "0.3", "--compile", "off",
                         "--no-cuda-graphs", "--kernel-overrides", "lambda_returns", "reference"])
    assert (cfg.reppo.kl_target, cfg.reppo.kl_estimator, cfg.ppo.clip_eps) == (0.2, "analytic", 0.3)
    assert (cfg.torch.compile, cfg.torch.cuda_graphs) == ("off", False)
    assert cfg.kernel_overrides == {"lambda_returns": "reference"}


def test_maniskill_defaults_to_torch_and_a_cpu_preset_without_cuda(monkeypatch):
    cfg = preset_config("auto", "maniskill", env="PickCube-v1", gpu=False)
    assert (cfg.preset, cfg.framework, cfg.gamma, cfg.reppo.v_min, cfg.reppo.v_max) == \
        ("maniskill_cpu", "torch", None, -15, 15)
    assert cfg.num_envs <= 16  # one process per env on CPU
    assert preset_config("cpu", "maniskill").preset == "maniskill_cpu"
    assert preset_config("auto", "maniskill", gpu=True).num_envs == Config().num_envs
    validate(cfg)
    with pytest.raises(ConfigError, match="pass gpu=True or False"):
        preset_config("auto", "maniskill")
    # The command line probes the machine, and only for ManiSkill.
    monkeypatch.setattr(train, "_cuda_available", lambda: False)
    assert parse_args(["--env", "PickCube-v1"])[0].preset == "maniskill_cpu"
    monkeypatch.setattr(train, "_cuda_available", lambda: True)
    assert parse_args(["--env", "PickCube-v1"])[0].preset == "maniskill"


@pytest.mark.parametrize("changes, field", [
    ({"num_envs": 3, "num_steps": 5, "num_minibatches": 4}, "num_minibatches"),
    ({"num_envs": 0}, "num_envs"),
    ({"num_epochs": -1}, "num_epochs"),
    ({"critic_hidden": 0}, "critic_hidden"),
    ({"gamma": 1.0}, "gamma"),
    ({"gamma": 0.0}, "gamma"),
    ({"lmbda": 1.5}, "lmbda"),
    ({"v_min": 10.0, "v_max": 0.0}, "v_min"),
    ({"kl_target": 0.0}, "kl_target"),
    ({"kl_estimator": "exact"}, "kl_estimator"),
    ({"critic_hidden_blocks": 0}, "critic_hidden_blocks"),
    ({"entropy_coef": -1.0}, "entropy_coef"),
    ({"compile": "yes"}, "compile"),
    ({"env_impl": "mjx"}, "env_impl"),
    ({"framework": "tensorflow"}, "framework"),
    ({"kernels": "cuda"}, "kernels"),
    ({"framework": "jax", "kernels": "triton"}, "kernels: unknown backend 'triton' for framework 'jax'"),
    ({"kernel_overrides": {"softmax": "reference"}}, "kernel_overrides: unknown op"),
    ({"preset": "ppo"}, "preset"),
    ({"algo": "ppo", "preset": "maniskill"}, "preset"),
])
def test_invalid_values_name_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        validate(Config().replace(**changes))


def test_divisibility_error_suggests_a_divisor():
    with pytest.raises(ConfigError, match=r"pick a divisor of 15 \(e.g. 3\)"):
        validate(Config().replace(num_envs=3, num_steps=5, num_minibatches=4))


def test_cli_errors_are_one_line_and_exit_2(capsys):
    assert main(["--env", "HumanoidRunn"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "closest" in err and "HumanoidRun" in err
    assert main(["--env", "CartpoleBalance", "--gamma", "1.5"]) == 2
    assert "gamma" in capsys.readouterr().err
    assert main(["--env", "CartpoleBalance", "--preset", "ppo_cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--algo ppo --preset cpu" in err
    assert main(["--env", "PickCube-v1", "--algo", "ppo", "--preset", "maniskill"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no 'maniskill' preset for --algo ppo" in err
    assert "cpu (reppo, ppo, rpo)" in err


def test_help_lists_field_docs_by_group():
    out = subprocess.run([sys.executable, "-m", "reppo_fast.train", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--num-envs" in out.stdout and "Parallel environments" in out.stdout
    for section, flag in [("reppo options", "--kl-target"), ("ppo options", "--clip-eps"),
                          ("torch options", "--cuda-graphs")]:
        title = f"─ {section} ─"  # the section box's title ("ppo options" is in "reppo options")
        assert title in out.stdout and flag in out.stdout.split(title)[1].split("╰")[0]


def test_importing_the_config_loads_no_framework_and_no_kernels():
    code = ("import sys, reppo_fast.config;"
            "print(sorted(m for m in ('torch', 'jax', 'reppo_fast.kernels') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_config_json_is_nested_and_round_trips():
    cfg = Config().replace(env="CartpoleBalance", kernel_overrides={"tanh_normal": "reference"},
                           kl_target=0.2)
    assert json.loads(cfg.to_json())["reppo"]["kl_target"] == 0.2
    assert Config.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="unknown fields"):
        Config.from_json('{"not_a_field": 1}')
    with pytest.raises(ConfigError, match=r"unknown fields \['ppo.kl_target'\]"):
        Config.from_json('{"ppo": {"kl_target": 0.2}}')


def test_a_flat_config_saved_before_the_groups_still_reads():
    old = {**{k: v for k, v in json.loads(Config().to_json()).items() if k not in GROUPS},
           **dataclasses.asdict(Config().reppo), **dataclasses.asdict(Config().ppo),
           **dataclasses.asdict(Config().torch), "algo": "ppo", "preset": "ppo_cpu", "clip_eps": 0.3,
           "compile": "off"}
    cfg = Config.from_json(json.dumps(old))
    assert cfg == Config().replace(algo="ppo", preset="cpu", clip_eps=0.3, compile="off")


def _saved_run(tmp_path, text):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ckpt_00000001.npz").touch()
    (tmp_path / "config.json").write_text(text)
    return str(tmp_path)


def test_resume_refuses_changed_group_fields(tmp_path):
    run_dir = _saved_run(tmp_path, Config().replace(env="ToyPointMass", preset="dmc").to_json())
    with pytest.raises(ConfigError, match=r"cannot change kl_target, compile \("):
        parse_args(["--resume", run_dir, "--kl-target", "0.3", "--compile", "on"])
    cfg, resume = parse_args(["--resume", run_dir, "--total-steps", "1000"])
    assert resume and cfg.total_steps == 1000 and cfg.run_dir == run_dir


def test_resume_reads_a_flat_config(tmp_path):
    flat = {**Config().replace(env="ToyPointMass").flat(), "algo": "ppo", "preset": "ppo", "clip_eps": 0.3}
    cfg, _ = parse_args(["--resume", _saved_run(tmp_path, json.dumps(flat))])
    assert (cfg.algo, cfg.preset, cfg.ppo.clip_eps) == ("ppo", "dmc", 0.3)


# --- RPO (experimental; ../shared/rpo_spec.md section 4) ----------------------------------------------------

@pytest.mark.parametrize("preset, num_envs", [("dmc", 256), ("cpu", 64)])
def test_rpo_presets_carry_the_spec_defaults(preset, num_envs):
    """H 32 = num_steps, M 5 policy epochs on the full window, ratio window (0.8, 1.0) by mask, KL 0.2
    old||new, no entropy bonus, gamma 0.99, lambda 0.95, (128, 128) actor and critics, AdamW (0.7, 0.95)
    without weight decay after a global clip of 1.0, actor lr 2e-3, critic lr 1e-3, critics 16 epochs x 4
    minibatches, 2 critics with the target moved at alpha 0.2, state-independent log std from -1, per-sample
    g clip 1.0, remat on, float32 physics, no solver change; N 64 on a CPU."""
    cfg = preset_config(preset, "dmc", "rpo")
    validate(cfg)
    assert (cfg.algo, cfg.preset, cfg.num_envs, cfg.num_steps) == ("rpo", preset, num_envs, 32)
    assert (cfg.num_epochs, cfg.num_minibatches, cfg.gamma, cfg.lmbda) == (16, 4, 0.99, 0.95)
    assert (cfg.actor_hidden, cfg.actor_hidden_blocks, cfg.critic_hidden, cfg.critic_hidden_blocks) == \
        (128, 2, 128, 2)
    assert (cfg.lr, cfg.max_grad_norm) == (2e-3, 1.0)
    r = cfg.rpo
    assert (r.rpo_epochs, r.rpo_minibatches, r.rpo_clip_low, r.rpo_clip_high, r.rpo_clip_mode) == \
        (5, 1, 0.8, 1.0, "mask")
    assert (r.rpo_surr_coef, r.rpo_kl_coef, r.rpo_kl_dir, r.rpo_ent_coef) == (1.0, 0.2, "old_new", 0.0)
    assert (r.rpo_critic_lr, r.rpo_adam_b1, r.rpo_adam_b2, r.rpo_weight_decay) == (1e-3, 0.7, 0.95, 0.0)
    assert (r.rpo_num_critics, r.rpo_target_alpha, r.rpo_std, r.rpo_log_std_init) == \
        (2, 0.2, "state_independent", -1.0)
    assert (r.rpo_grad_clip, r.rpo_remat, r.rpo_float64, r.rpo_single_solver_iteration) == \
        (1.0, True, False, False)
    assert preset_config("auto", "dmc", "rpo", gpu=True) == preset_config("dmc", "dmc", "rpo")
    assert preset_config("auto", "dmc", "rpo", gpu=False) == preset_config("cpu", "dmc", "rpo")


def test_rpo_fields_are_flat_flags():
    cfg, _ = parse_args(["--env", "CartpoleSwingup", "--algo", "rpo", "--preset", "cpu", "--rpo-epochs", "1",
                         "--rpo-kl-dir", "new_old", "--no-rpo-remat", "--rpo-grad-clip", "None",
                         "--rpo-single-solver-iteration"])
    r = cfg.rpo
    assert (cfg.algo, cfg.num_envs, r.rpo_epochs, r.rpo_kl_dir, r.rpo_remat, r.rpo_grad_clip) == \
        ("rpo", 64, 1, "new_old", False, None)
    assert r.rpo_single_solver_iteration


@pytest.mark.parametrize("changes, field", [
    ({"rpo_epochs": 0}, "rpo_epochs"),
    ({"rpo_minibatches": 0}, "rpo_minibatches"),
    ({"num_envs": 3, "num_steps": 5, "num_minibatches": 1, "rpo_minibatches": 4}, "rpo_minibatches"),
    ({"rpo_clip_low": 0.0}, "rpo_clip_low"),
    ({"rpo_clip_low": 1.5}, "rpo_clip_low"),
    ({"rpo_clip_high": 0.0}, "rpo_clip_high"),
    ({"rpo_clip_mode": "ppo"}, "rpo_clip_mode"),
    ({"rpo_kl_dir": "both"}, "rpo_kl_dir"),
    ({"rpo_std": "state"}, "rpo_std"),
    ({"rpo_surr_coef": -1.0}, "rpo_surr_coef"),
    ({"rpo_kl_coef": -0.2}, "rpo_kl_coef"),
    ({"rpo_ent_coef": -1e-3}, "rpo_ent_coef"),
    ({"rpo_weight_decay": -1.0}, "rpo_weight_decay"),
    ({"rpo_critic_lr": 0.0}, "rpo_critic_lr"),
    ({"rpo_adam_b1": 1.0}, "rpo_adam_b1"),
    ({"rpo_adam_b2": -0.1}, "rpo_adam_b2"),
    ({"rpo_target_alpha": 1.0}, "rpo_target_alpha"),
    ({"rpo_grad_clip": 0.0}, "rpo_grad_clip"),
    ({"rpo_num_critics": 0}, "rpo_num_critics"),
    ({"env": "CartpoleSwingup", "bootstrap_terminations": True}, "bootstrap-terminations"),
])
def test_invalid_rpo_values_name_the_field_in_one_line(changes, field):
    with pytest.raises(ConfigError, match=field) as err:
        validate(Config().replace(algo="rpo", preset="dmc", **changes))
    assert "\n" not in str(err.value)


def test_rpo_on_maniskill_is_refused(monkeypatch, capsys):
    """ManiSkill's PhysX cannot be differentiated: `--algo rpo` on a ManiSkill task is refused by validation
    (whatever the preset) and on the command line, in one line."""
    with pytest.raises(ConfigError, match="ManiSkill") as err:
        validate(Config().replace(algo="rpo", env="PickCube-v1", framework="torch"))
    assert "PickCube-v1" in str(err.value) and "\n" not in str(err.value)
    validate(Config().replace(algo="reppo", env="PickCube-v1", framework="torch"))  # only RPO is refused
    monkeypatch.setattr(train, "_cuda_available", lambda: False)
    assert main(["--env", "PickCube-v1", "--algo", "rpo"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "rpo" in err


def test_a_config_saved_before_rpo_still_reads():
    """Before RPO, critic_hidden_blocks was PPO's (`ppo.critic_hidden_blocks`) and there was no rpo group:
    such a config.json reads, the value at the top level and the rpo group at its defaults."""
    old = json.loads(Config().replace(algo="ppo", preset="cpu").to_json())
    del old["rpo"], old["critic_hidden_blocks"]
    old["ppo"]["critic_hidden_blocks"] = 3
    cfg = Config.from_json(json.dumps(old))
    assert cfg == Config().replace(algo="ppo", preset="cpu", critic_hidden_blocks=3)
    with pytest.raises(ConfigError, match=r"unknown fields \['ppo.rpo_epochs'\]"):
        Config.from_json('{"ppo": {"rpo_epochs": 2}}')


@pytest.mark.parametrize("changes,says", [
    (dict(framework="torch", devices=2), "torchrun --nproc_per_node 2"),
    (dict(framework="torch", multi_host=True), "rendezvous"),
    (dict(devices=0), "devices must be a positive integer"),
])
def test_device_fields_name_the_launcher_in_one_line(changes, says):
    with pytest.raises(ConfigError, match=says) as err:
        validate(Config().replace(**changes))
    assert "\n" not in str(err.value)


def test_device_count_is_resumable_and_the_world_size_split_is_checked():
    from reppo_fast.config import validate_world_size

    assert {"devices", "multi_host"} <= train.RESUMABLE_FIELDS
    cfg = Config().replace(num_envs=1024, num_steps=128, num_minibatches=64)
    validate_world_size(cfg, 8, "--devices")  # 128 envs x 128 steps per rank, 64 minibatches of 256 rows
    with pytest.raises(ConfigError, match=r"num_envs=1024 does not split over 3 devices \(torchrun"):
        validate_world_size(cfg, 3, "torchrun --nproc_per_node")
    with pytest.raises(ConfigError, match="num_minibatches=64 must divide"):
        validate_world_size(cfg.replace(num_steps=1, num_envs=64), 2, "--devices")
