"""What the presets promise beyond their numbers (issue 13): every ManiSkill preset bootstraps at every
episode end and no DM Control one does; evaluation is large where a GPU runs it and small on a CPU."""

import pytest

from reppo_fast.config import preset_config

GPU_PRESETS = [("dmc", "dmc", "reppo"), ("dmc", "dmc", "ppo"), ("maniskill", "maniskill", "reppo")]
CPU_PRESETS = [("cpu", "dmc", "reppo"), ("cpu", "dmc", "ppo"), ("maniskill_cpu", "maniskill", "reppo")]


@pytest.mark.parametrize("preset, suite, algo", GPU_PRESETS + CPU_PRESETS)
def test_only_maniskill_bootstraps_terminations(preset, suite, algo):
    cfg = preset_config(preset, suite, algo, env="PickCube-v1" if suite == "maniskill" else "CartpoleBalance")
    assert cfg.bootstrap_terminations == (suite == "maniskill")


@pytest.mark.parametrize("preset, suite, algo", GPU_PRESETS)
def test_gpu_presets_evaluate_on_many_envs(preset, suite, algo):
    # the authors' 1024 envs on DM Control; the standard error scales as 1 / sqrt(num_eval_envs)
    cfg = preset_config(preset, suite, algo, env="PickCube-v1" if suite == "maniskill" else "CartpoleBalance")
    assert cfg.num_eval_envs >= (1024 if suite == "dmc" else 256)


@pytest.mark.parametrize("preset, suite, algo", CPU_PRESETS)
def test_cpu_presets_evaluate_on_few_envs(preset, suite, algo):
    cfg = preset_config(preset, suite, algo, env="PickCube-v1" if suite == "maniskill" else "CartpoleBalance")
    assert cfg.num_eval_envs <= 16
