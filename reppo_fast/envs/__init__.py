"""Environments behind one contract: `make_env(name, num_envs=...) -> VecEnv` for the JAX path
(contract_jax.py) and `make_torch_env(name, num_envs=...) -> TorchVecEnv` for the PyTorch path
(contract_torch.py).

Heavy imports (jax, torch, mujoco_playground, ManiSkill) happen inside the factories, so
`reppo_fast.envs.names` stays cheap to import for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reppo_fast.envs.names import EnvName, UnknownEnvError, UnsupportedEnvError, resolve_env

if TYPE_CHECKING:
    import torch

    from reppo_fast.envs.contract_jax import VecEnv
    from reppo_fast.envs.contract_torch import TorchVecEnv

__all__ = ["EnvName", "UnknownEnvError", "UnsupportedEnvError", "make_env", "make_torch_env", "resolve_env"]


def make_env(name: str, *, num_envs: int, impl: str = "jax", episode_length: int | None = None,
             **kw: Any) -> VecEnv:
    """Resolve `name` (aliases allowed; prints nothing) and build its JAX VecEnv.

    dmc: mujoco_playground with MJX backend `impl`; `episode_length` defaults to the task's (1000).
    toy: ToyPointMass; `episode_length` defaults to 100; kw go to ToyPointMass (action_size,
      nan_above). maniskill: raises UnsupportedEnvError (ManiSkill3 runs on the PyTorch path: make_torch_env).
    """
    env = resolve_env(name)
    if env.suite == "dmc":
        from reppo_fast.envs.playground_jax import load_playground

        return load_playground(env.name, num_envs=num_envs, impl=impl, episode_length=episode_length,
                               **kw)
    if env.suite == "toy":
        from reppo_fast.envs.contract_jax import VecEnv
        from reppo_fast.envs.toy_common import DEFAULT_EPISODE_LENGTH
        from reppo_fast.envs.toy_jax import ToyPointMass

        max_episode_steps = episode_length if episode_length is not None else DEFAULT_EPISODE_LENGTH
        return VecEnv(ToyPointMass(**kw), num_envs=num_envs, max_episode_steps=max_episode_steps,
                      name=env.name)
    raise UnsupportedEnvError(
        f"{env.name}: ManiSkill3 tasks run on the PyTorch path; use --framework torch"
    )


def make_torch_env(name: str, *, num_envs: int, device: str | torch.device | None = None, impl: str = "jax",
                   episode_length: int | None = None, **kw: Any) -> TorchVecEnv:
    """Resolve `name` and build its env behind the torch contract (contract_torch.TorchVecEnv).

    dmc: PlaygroundTorchEnv, the JAX VecEnv of make_env (MJX backend `impl`) driven through DLPack;
      device None picks CUDA when JAX runs on the GPU and torch sees CUDA, else CPU.
    toy: BatchedContract(ToyPointMassTorch); device None picks CUDA when torch sees it, else CPU;
      `episode_length` defaults to 100; kw go to ToyPointMassTorch (action_size, nan_above).
    maniskill: maniskill.make_maniskill_env(name, num_envs=, device=, episode_length=, **kw).
    """
    env = resolve_env(name)
    if env.suite == "dmc":
        from reppo_fast.envs.playground_jax import load_playground
        from reppo_fast.envs.playground_torch import PlaygroundTorchEnv

        vec_env = load_playground(env.name, num_envs=num_envs, impl=impl, episode_length=episode_length,
                                  **kw)
        return PlaygroundTorchEnv(vec_env, device=device)
    if env.suite == "toy":
        import torch

        from reppo_fast.envs.contract_torch import BatchedContract
        from reppo_fast.envs.toy_common import DEFAULT_EPISODE_LENGTH
        from reppo_fast.envs.toy_torch import ToyPointMassTorch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        max_episode_steps = episode_length if episode_length is not None else DEFAULT_EPISODE_LENGTH
        return BatchedContract(ToyPointMassTorch(num_envs, device=device, **kw),
                               max_episode_steps=max_episode_steps, name=env.name)
    from reppo_fast.envs.maniskill import make_maniskill_env

    return make_maniskill_env(env.name, num_envs=num_envs, device=device, episode_length=episode_length, **kw)
