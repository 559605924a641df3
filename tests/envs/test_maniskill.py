"""ManiSkill3 behind the torch contract, on the real simulator (physx_cpu, CPU only).

Needs ManiSkill (the `maniskill` extra) and, for everything that builds a scene, a Vulkan device: on
a machine without a GPU, `source scripts/setup_lavapipe.sh` before pytest (.ci/run does). Those tests
skip, saying why, only when SAPIEN finds no Vulkan device. The contract logic alone, without a
simulator: test_maniskill_contract.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

pytest.importorskip("mani_skill", reason="ManiSkill3 is not installed (pip install -e '.[maniskill]')")

from reppo_fast.envs.maniskill import make_maniskill_env  # noqa: E402
from reppo_fast.envs.maniskill_sim import (  # noqa: E402
    MissingAssetsError,
    _no_asset_prompts,
    missing_assets,
    registered_max_episode_steps,
    vulkan_error,
)
from reppo_fast.envs.names import MANISKILL_TASKS  # noqa: E402

pytestmark = pytest.mark.xdist_group("maniskill")  # its module fixture is built once, on one worker

ASSET_TASKS = {"PickSingleYCB-v1": ["ycb"]}  # tasks whose asset packs are not in the mani_skill wheel


@pytest.fixture(scope="module")
def vulkan() -> None:
    reason = vulkan_error()
    if reason is not None:
        pytest.skip(f"{reason}; on a CPU machine run `source scripts/setup_lavapipe.sh` first")


def _record_raw_steps(env) -> list[torch.Tensor]:
    """Wrap the in-process ManiSkill task's step to keep every observation it returns."""
    raw_env, seen = env.sim.env, []
    raw_step = raw_env.step

    def step(action):
        out = raw_step(action)
        seen.append(out[0].clone())
        return out

    raw_env.step = step
    return seen


def test_registered_time_limits():
    assert registered_max_episode_steps("PickCube-v1") == 50
    assert registered_max_episode_steps("PegInsertionSide-v1") == 100


def test_only_ycb_needs_downloaded_assets(tmp_path):
    # Every other listed task (the Unitree G1 ones included) ships its assets in the mani_skill wheel.
    for task in MANISKILL_TASKS:
        if task not in ASSET_TASKS:
            assert missing_assets(task) == [], task


def test_asset_task_fails_fast_without_prompting(tmp_path):
    # An empty asset dir, and a stdin that stays open: a prompt would block until the timeout.
    script = ("from reppo_fast.envs.maniskill import make_maniskill_env\n"
              "make_maniskill_env('PickSingleYCB', num_envs=1)")
    env = {**os.environ, "MS_ASSET_DIR": str(tmp_path / "assets")}
    with open(tmp_path / "out", "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.STDOUT, env=env)
        try:
            proc.wait(timeout=60)
        finally:
            proc.kill()
            proc.stdin.close()
    log = (tmp_path / "out").read_text()
    assert proc.returncode != 0
    assert "MissingAssetsError: PickSingleYCB-v1 needs the ManiSkill asset pack ycb" in log, log
    assert "python -m mani_skill.utils.download_asset ycb" in log and "network access" in log


def test_asset_prompt_is_refused():
    from mani_skill.utils import download_asset

    with _no_asset_prompts("PickSingleYCB-v1"), pytest.raises(MissingAssetsError, match="Refusing"):
        download_asset.prompt_yes_no("Would you like to download them now?")
    assert download_asset.prompt_yes_no.__name__ == "prompt_yes_no"  # restored


def test_pick_cube_single_env_true_final_obs(vulkan):
    env = make_maniskill_env("PickCube", num_envs=1, episode_length=3)
    try:
        assert (env.name, env.num_envs, env.max_episode_steps) == ("PickCube-v1", 1, 3)
        assert (env.obs_size, env.action_size, env.device.type) == (42, 8, "cpu")
        assert env.control_mode == "pd_joint_delta_pos" and env.sim_backend == "physx_cpu"
        raw_obs = _record_raw_steps(env)
        obs = env.reset(0, random_step_count=False)
        assert obs.shape == (1, 42) and obs.dtype == torch.float32 and env.obs is obs
        action = torch.full((1, 8), 0.5)
        for t in range(3):
            step = env.step(action)
            assert step.obs.shape == step.next_obs.shape == (1, 42)
            assert step.reward.shape == (1,) and step.reward.dtype == torch.float32
            assert step.terminated.dtype == step.truncated.dtype == step.nonfinite.dtype == torch.bool
            assert not step.terminated.any() and not step.nonfinite.any()
            assert torch.equal(step.next_obs, raw_obs[t])  # what ManiSkill returned before any reset
            if t < 2:
                assert not step.truncated.any() and torch.equal(step.obs, step.next_obs)
        assert step.truncated.all() and env.obs is step.obs
        assert not torch.allclose(step.obs, step.next_obs)  # obs is the new episode's reset obs
        metrics = env.episode_metrics()
        assert metrics == {"env/success_rate": 0.0, "env/episodes": 1.0}
        assert env.episode_metrics() == {}
        assert not env.step(action).truncated.any()  # the counter restarted with the episode
    finally:
        env.close()


def test_actions_are_mapped_to_unnormalised_bounds(vulkan):
    env = make_maniskill_env("PickCube", num_envs=1, control_mode="pd_joint_pos")
    try:
        space = env.sim.env.single_action_space
        sent = []
        raw_step = env.sim.env.step
        env.sim.env.step = lambda action: (sent.append(action.clone()), raw_step(action))[1]
        env.reset(0)
        env.step(-torch.ones(1, 8))
        env.step(torch.ones(1, 8))
        torch.testing.assert_close(sent[0][0], torch.as_tensor(space.low))
        torch.testing.assert_close(sent[1][0], torch.as_tensor(space.high))
    finally:
        env.close()


def test_subprocess_worker_matches_in_process(vulkan):
    # Worker 0 seeds like the in-process env, and ManiSkill's unseeded resets draw from the env's own
    # seeded RNG, so the two run bit for bit the same, resets included.
    local = make_maniskill_env("PickCube", num_envs=1, episode_length=3)
    remote = make_maniskill_env("PickCube", num_envs=1, episode_length=3, processes=True)
    try:
        assert torch.equal(local.reset(7), remote.reset(7))
        generator = torch.Generator().manual_seed(0)
        for _ in range(7):
            action = torch.rand(1, 8, generator=generator) * 2 - 1
            expected, got = local.step(action), remote.step(action)
            for field, a, b in zip(expected._fields, expected, got):
                assert torch.equal(a, b), field
    finally:
        local.close()
        remote.close()


def test_two_env_subprocess_run_steps_and_closes(vulkan):
    env = make_maniskill_env("PickCube", num_envs=2, episode_length=4)
    procs = list(env.sim._procs)
    try:
        obs = env.reset(1)
        assert obs.shape == (2, 42) and not torch.equal(obs[0], obs[1])  # worker i seeds with 1 + i
        counts = env._step_count.tolist()
        truncations = []
        for t in range(8):
            step = env.step(torch.rand(2, 8) * 2 - 1)
            assert step.obs.shape == step.next_obs.shape == (2, 42) and step.reward.shape == (2,)
            assert not step.terminated.any() and not step.nonfinite.any()
            ended = step.truncated
            assert torch.equal(step.obs[~ended], step.next_obs[~ended])
            assert not torch.isclose(step.obs[ended], step.next_obs[ended]).all(dim=1).any()
            truncations.append(ended.tolist())
        for i, count in enumerate(counts):  # desynchronised: episode ends follow each start count
            expected = [(count + t + 1) % 4 == 0 for t in range(8)]
            assert [row[i] for row in truncations] == expected
        assert env.episode_metrics()["env/episodes"] == sum(map(sum, truncations))
    finally:
        env.close()
    assert all(proc.exitcode == 0 for proc in procs)
    env.close()  # idempotent
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(2, 8))


def test_workers_exit_when_the_parent_dies(vulkan, tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys
        from reppo_fast.envs.maniskill import make_maniskill_env
        env = make_maniskill_env("PickCube", num_envs=2)
        env.reset(0)
        print(*env.sim.pids, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == -signal.SIGKILL, out.stderr
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (orphans are reaped by init, eventually)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("task", [t for t in MANISKILL_TASKS if t not in ASSET_TASKS])
def test_every_task_builds_and_steps(vulkan, task):
    env = make_maniskill_env(task, num_envs=1)
    try:
        assert env.max_episode_steps == registered_max_episode_steps(task)
        obs = env.reset(0)
        step = env.step(torch.zeros(1, env.action_size))
        assert obs.shape == step.next_obs.shape == (1, env.obs_size)
        assert torch.isfinite(step.next_obs).all() and torch.isfinite(step.reward).all()
    finally:
        env.close()
