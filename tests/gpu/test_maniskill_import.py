"""ManiSkill's GPU path (sim_backend physx_cuda: every env batched on the GPU, in this process) builds an env
and steps it, where mani_skill is installed and torch sees CUDA. The lent GPU machine has no mani_skill, and
mani_skill + SAPIEN are too large to carry there as wheels, so this skips there and says so; the CPU path
(physx_cpu) is tests/envs/test_maniskill.py."""

import importlib.util

import pytest
import torch

NO_MANISKILL = ("mani_skill is not installed (the `maniskill` extra); the lent GPU machine's image has "
                "none and mani_skill + SAPIEN are too large to carry as wheels, so physx_cuda is not "
                "checked there")


@pytest.fixture(scope="module")
def maniskill():
    if importlib.util.find_spec("mani_skill") is None:
        pytest.skip(NO_MANISKILL)
    from reppo_fast.envs import maniskill

    return maniskill


def test_the_torch_env_module_imports_with_mani_skill(maniskill):
    assert callable(maniskill.make_maniskill_env)


def test_physx_cuda_env_builds_and_steps(maniskill):
    if not torch.cuda.is_available():
        pytest.skip("physx_cuda needs a CUDA GPU (torch sees none)")
    from reppo_fast.envs.maniskill_sim import vulkan_error

    if (reason := vulkan_error()) is not None:
        pytest.skip(f"{reason}: SAPIEN needs a Vulkan device even for state observations")
    env = maniskill.make_maniskill_env("PickCube-v1", num_envs=4, device="cuda")
    try:
        assert env.sim_backend == "physx_cuda", env
        obs = env.reset(0)
        assert obs.device.type == "cuda" and tuple(obs.shape) == (4, env.obs_size)
        out = env.step(torch.zeros(4, env.action_size, device="cuda"))
        assert out.obs.device.type == "cuda" and bool(torch.isfinite(out.obs).all())
    finally:
        env.close()
