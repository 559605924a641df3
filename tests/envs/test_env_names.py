"""Env name resolution: exact names, aliases, case, one-line errors, and a cheap import."""

import subprocess
import sys

import pytest

from reppo_fast.envs import UnsupportedEnvError, make_env
from reppo_fast.envs.names import (
    ALIASES,
    DMC_TASKS,
    MANISKILL_TASKS,
    SUITES,
    UnknownEnvError,
    describe_names,
    resolve_env,
)


def test_the_paper_tasks_resolve_exactly():
    assert len(DMC_TASKS) == len(set(DMC_TASKS)) == 23
    for task in DMC_TASKS + ("PointMass", "SwimmerSwimmer6"):
        assert resolve_env(task) == (task, "dmc", None)
    assert resolve_env("ToyPointMass") == ("ToyPointMass", "toy", None)
    for task in MANISKILL_TASKS:
        assert resolve_env(task) == (task, "maniskill", None)


@pytest.mark.parametrize("given, canonical", [
    ("Humanoid", "HumanoidRun"), ("walker", "WalkerWalk"), ("CHEETAH", "CheetahRun"),
    ("Cartpole", "CartpoleBalance"), ("Swimmer", "SwimmerSwimmer6"), ("pickcube", "PickCube-v1"),
    ("humanoidrun", "HumanoidRun"), ("walker_walk", "WalkerWalk"), ("pushcube-v1", "PushCube-v1"),
])
def test_aliases_and_case_insensitive_names(given, canonical):
    env = resolve_env(given)
    assert env.name == canonical and env.alias == given


def test_every_alias_targets_a_canonical_name_and_names_do_not_collide():
    all_names = [t for tasks in SUITES.values() for t in tasks]
    assert set(ALIASES.values()) <= set(all_names)
    keys = [n.lower().replace("-", "").replace("_", "") for n in all_names + list(ALIASES)]
    assert len(keys) == len(set(keys))
    assert "HumanoidRun" in describe_names()


def test_unknown_name_is_one_line_with_the_closest_names():
    with pytest.raises(UnknownEnvError) as err:
        resolve_env("HumanoidRunn")
    message = str(err.value)
    assert "\n" not in message
    assert message == ("unknown env 'HumanoidRunn'; closest: HumanoidRun, Humanoid, HumanoidStand "
                       "(see --help for all names)")
    with pytest.raises(ValueError, match="see --help"):
        resolve_env("definitely-not-an-env")


@pytest.mark.parametrize("name", ["Go1JoystickFlatTerrain", "pandapickcube", "LeapCubeReorient"])
def test_playground_online_suites_raise_the_offline_error(name):
    with pytest.raises(UnknownEnvError, match="network access") as err:
        resolve_env(name)
    assert "\n" not in str(err.value)


def test_maniskill_is_not_built_yet():
    with pytest.raises(UnsupportedEnvError, match="--framework torch"):
        make_env("PickCube", num_envs=2)


def test_names_import_pulls_in_no_heavy_framework():
    code = ("import sys, reppo_fast.envs.names, reppo_fast.envs; "
            "print(sorted(m for m in ('jax', 'torch', 'mujoco_playground', 'mujoco') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
