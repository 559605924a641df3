"""PPO's `dmc` preset takes mujoco_playground's per-task Brax-PPO overrides (config/playground_ppo.py)."""

import pytest

from reppo_fast.config import PRESETS, Config, ConfigError, preset_config

pytest.importorskip("mujoco_playground")

from reppo_fast.config import playground_ppo  # noqa: E402
from reppo_fast.config.playground_ppo import brax_ppo_overrides  # noqa: E402
from reppo_fast.envs.names import SUITES  # noqa: E402


@pytest.mark.parametrize(("env", "expected"), [
    ("BallInCup", {"gamma": 0.95}),
    ("FingerSpin", {"gamma": 0.95}),
    ("PendulumSwingup", {"action_repeat": 4, "num_epochs": 4}),
    ("AcrobotSwingup", {"total_steps": 100_000_000}),
    ("WalkerRun", {"total_steps": 100_000_000}),
    ("SwimmerSwimmer6", {"total_steps": 100_000_000}),
    ("CartpoleSwingup", {}),
])
def test_overrides(env, expected):
    assert brax_ppo_overrides(env) == expected


def test_every_setting_playground_varies_per_task_is_mapped():
    # A playground that starts varying another setting per task (say the learning rate) must be mapped
    # here, or our preset would silently differ from Brax's for that task.
    base = playground_ppo._brax_ppo_config(playground_ppo.BASE_TASK)
    for env in SUITES["dmc"]:
        task = playground_ppo._brax_ppo_config(env)
        assert {key for key in task if task[key] != base[key]} <= set(playground_ppo.BRAX_TO_FIELDS), env


def test_the_ppo_preset_holds_playgrounds_base_values():
    base = playground_ppo._brax_ppo_config(playground_ppo.BASE_TASK)
    preset = {**Config().flat(), **PRESETS["dmc", "ppo"]}
    assert {field: preset[field] for field in playground_ppo.BRAX_TO_FIELDS.values()} == {
        field: base[key] for key, field in playground_ppo.BRAX_TO_FIELDS.items()}


def test_preset_config_applies_them_below_explicit_fields():
    assert preset_config("dmc", "dmc", "ppo", env="BallInCup").gamma == 0.95
    assert preset_config("dmc", "dmc", "ppo", env="BallInCup", gamma=0.9).gamma == 0.9
    pendulum = preset_config("auto", "dmc", "ppo", gpu=True, env="Pendulum")  # aliases resolve
    assert (pendulum.action_repeat, pendulum.num_epochs, pendulum.gamma) == (4, 4, 0.995)
    assert preset_config("dmc", "dmc", "ppo", env="PendulumSwingup", action_repeat=1).action_repeat == 1
    assert preset_config("dmc", "dmc", "ppo", env="CartpoleSwingup") == Config().replace(
        **PRESETS["dmc", "ppo"], env="CartpoleSwingup", algo="ppo", preset="dmc")


def test_other_presets_are_untouched():
    assert preset_config("dmc", "dmc", "reppo", env="BallInCup") == Config().replace(
        **PRESETS["dmc", "reppo"], env="BallInCup", preset="dmc")
    assert preset_config("cpu", "dmc", "ppo", env="BallInCup").gamma == PRESETS["cpu", "ppo"]["gamma"]
    assert preset_config("dmc", "toy", "ppo", env="ToyPointMass").gamma == PRESETS["dmc", "ppo"]["gamma"]


def test_a_missing_playground_names_the_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mujoco_playground.config", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"pip install playground==0\.2\.0"):
        preset_config("dmc", "dmc", "ppo", env="BallInCup")
