"""`--kernels triton` on the torch path: a few updates give the same losses as `--kernels reference` from
the same seed. The trainers run on the device the Triton kernels run on (reppo_fast.process_env.
triton_device): CUDA when they compile, else the CPU and Triton's interpreter."""


import numpy as np
import pytest
import torch

from reppo_fast.config import Config
from reppo_fast.envs import make_torch_env
from reppo_fast.kernels import bind
from reppo_fast.on_torch.reppo import ALGORITHM as REPPO
from reppo_fast.on_torch.trainer import Trainer
from reppo_fast.process_env import triton_device

pytest.importorskip("triton")

DEVICE = torch.device(triton_device())
TINY = dict(env="ToyPointMass", framework="torch", num_envs=4, num_steps=4, num_epochs=1, num_minibatches=2,
            actor_hidden=16, actor_hidden_blocks=2, critic_hidden=16, num_bins=21, v_min=0.0, v_max=100.0,
            kl_samples=4, num_eval_envs=2, eval_interval=100, checkpoint_interval=100, progress=False,
            total_steps=2 * 16)


def _metrics(kernels: str) -> list[dict[str, float]]:
    """The metrics of each iteration of a REPPO trainer built as the runner builds it, on DEVICE."""
    cfg = Config().replace(**TINY, kernels=kernels)
    bound = bind("torch", kernels)
    assert bound.bound == {op: kernels for op in ("tanh_normal", "hl_gauss_ce", "lambda_returns")}
    env = make_torch_env(cfg.env, num_envs=cfg.num_envs, device=DEVICE, impl=cfg.env_impl,
                         episode_length=cfg.episode_length)
    eval_env = make_torch_env(cfg.env, num_envs=cfg.num_eval_envs, device=DEVICE, impl=cfg.env_impl)
    trainer = Trainer(cfg, env, eval_env, bound, REPPO, DEVICE)
    state = trainer.init_state(cfg.seed)
    metrics = []
    for _ in range(cfg.num_iterations):
        state, scalars = trainer.iteration(state)
        metrics.append({k: float(v) for k, v in scalars.items()})
    return metrics


def test_triton_kernels_train_with_the_reference_losses():
    reference = _metrics("reference")
    triton = _metrics("triton")
    assert len(reference) == len(triton) == 2
    for r, t in zip(reference, triton):
        for key in ("critic/loss", "critic/ce", "actor/loss", "actor/kl", "actor/entropy", "train/returns"):
            np.testing.assert_allclose(t[key], r[key], rtol=1e-4, atol=1e-5, err_msg=key)
