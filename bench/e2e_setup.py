"""End-to-end runs: a trainer built exactly as `python -m reppo_fast.train` builds it, and the synthetic
flat batch its update phase is timed on.

Couplings to the trainers beyond the runner's interface (init_state, iteration) are kept here and in
test_e2e.py: the update phase is the trainer's own (JAX: `_update`, epochs x minibatches of critic + actor
steps; torch: the captured phase `_phases_for(state).learn`), so the bench times the code that trains, not a
copy of it, and CI's bench smoke fails when that code moves.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
from typing import NamedTuple

import numpy as np

from bench import machine


class Variant(NamedTuple):
    fields: dict  # Config fields
    needs_cuda: bool


VARIANTS = {
    "torch-eager": Variant({"framework": "torch", "kernels": "reference", "compile": "off",
                            "cuda_graphs": False}, False),
    # The compiled reference under CUDA graphs, so that the kernels' share of the speed-up is visible.
    "torch-compile+graph": Variant({"framework": "torch", "kernels": "reference", "compile": "on",
                                    "cuda_graphs": True}, True),
    "torch-compile+graph+triton": Variant({"framework": "torch", "kernels": "triton", "compile": "on",
                                           "cuda_graphs": True}, True),
    "jax-xla": Variant({"framework": "jax", "kernels": "reference"}, False),
    "jax-pallas": Variant({"framework": "jax", "kernels": "pallas"}, False),
}
# A GPU runs the paper's DMC setting (preset dmc). A CPU runs the cpu preset's networks on a few envs and
# steps: a smoke of the same code path, where compilation dominates.
CPU_SIZES = {"num_envs": 64, "num_steps": 8, "num_epochs": 2, "num_minibatches": 2}
COMMON = {"num_eval_envs": 1, "progress": False}


def config(env: str, variant: str):
    from reppo_fast.config import preset_config, validate
    from reppo_fast.envs.names import resolve_env

    resolved = resolve_env(env)
    gpu = machine.has_cuda() or machine.jax_on_gpu()
    fields = {**VARIANTS[variant].fields, **COMMON, **({} if gpu else CPU_SIZES)}
    cfg = preset_config("dmc" if gpu else "cpu", resolved.suite, env=resolved.name, **fields)
    validate(cfg)
    return cfg


@dataclasses.dataclass
class Run:
    cfg: object
    trainer: object
    env: object
    state: object
    memory_before: int | None  # torch CUDA bytes allocated before the build


@functools.lru_cache(maxsize=1)  # one trainer at a time: building the next frees the last
def build(env: str, variant: str) -> Run:
    from reppo_fast.runner import _build

    cfg = config(env, variant)
    memory_before = _reset_torch_memory()
    built = _build(cfg)
    cfg, trainer, env_obj = built.cfg, built.trainer, built.env
    return Run(cfg, trainer, env_obj, trainer.init_state(cfg.seed), memory_before)


def _reset_torch_memory() -> int | None:
    if not machine.has_cuda():
        return None
    import torch

    # Compiled graphs and CUDA-graph pools of the previous variant would otherwise count against this one.
    torch._dynamo.reset()
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def torch_peak(run: Run) -> int | None:
    """Peak torch allocator bytes since the build (compilation, capture and every timed call included)."""
    if run.memory_before is None:
        return None
    import torch

    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - run.memory_before


def flat_batch(run: Run):
    """A random flat batch (num_envs * num_steps rows) of the trainer's Batch type. Update time does not
    depend on the values; they are still plausible (flags ~1 %, returns on the support, log_std in range)."""
    cfg, n = run.cfg, run.cfg.num_envs * run.cfg.num_steps
    obs, act, hidden = run.env.obs_size, run.env.action_size, cfg.critic_hidden
    rng = np.random.default_rng(0)
    normal = functools.partial(rng.standard_normal, dtype=np.float32)
    make = {"obs": lambda: normal((n, obs)), "action": lambda: np.tanh(normal((n, act))),
            "reward": lambda: normal(n), "terminated": lambda: rng.random(n) < 0.01,
            "truncated": lambda: rng.random(n) < 0.005,
            "returns": lambda: rng.uniform(cfg.reppo.v_min, cfg.reppo.v_max, n).astype(np.float32),
            "next_features": lambda: normal((n, hidden)), "old_mean": lambda: normal((n, act)),
            "old_log_std": lambda: rng.uniform(-2.0, 0.5, (n, act)).astype(np.float32)}
    if run.cfg.framework == "torch":
        import torch

        from reppo_fast.on_torch.reppo.losses import Batch

        device = next(run.state.actor.parameters()).device
        convert = functools.partial(torch.as_tensor, device=device)
    else:
        import jax.numpy as jnp

        from reppo_fast.on_jax.reppo.losses import Batch

        convert = jnp.asarray
    missing = [f for f in Batch._fields if f not in make]
    if missing:
        raise KeyError(f"bench/e2e_setup.py: Batch has new fields {missing}; teach flat_batch to make them")
    return Batch(**{f: convert(make[f]()) for f in Batch._fields})
