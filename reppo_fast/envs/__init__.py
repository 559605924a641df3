"""Environments behind one contract: `make_env(name, num_envs=...) -> VecEnv` for the JAX path
(contract_jax.py) and `make_torch_env(name, num_envs=...) -> TorchVecEnv` for the PyTorch path
(contract_torch.py).

Heavy imports (jax, torch, mujoco_playground, ManiSkill) happen inside the factories, so
`reppo_fast.envs.names` stays cheap to import for the CLI.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from reppo_fast.envs.names import EnvName, UnknownEnvError, UnsupportedEnvError, resolve_env

if TYPE_CHECKING:
    import torch

    from reppo_fast.envs.contract_jax import VecEnv
    from reppo_fast.envs.contract_torch import TorchVecEnv

__all__ = ["EnvName", "UnknownEnvError", "UnsupportedEnvError", "agent_steps", "make_env", "make_torch_env",
           "resolve_env"]


def make_env(name: str, *, num_envs: int, impl: str = "jax", episode_length: int | None = None,
             action_repeat: int = 1, obs_limit: float = math.inf, **kw: Any) -> VecEnv:
    """Resolve `name` (aliases allowed; prints nothing) and build its JAX VecEnv.

    action_repeat k: each agent step applies the action for k physics steps and sums their rewards
      (action_repeat.py); `episode_length` counts physics steps, so max_episode_steps = ceil(L / k).
    obs_limit: an observation with an entry beyond +-obs_limit counts as blown-up physics, like a non-finite
      one (cfg.obs_limit; the default inf counts non-finite ones only).
    dmc: mujoco_playground with MJX backend `impl`; `episode_length` defaults to the task's (1000).
    toy: ToyPointMass; `episode_length` defaults to 100; kw go to ToyPointMass (action_size,
      nan_above). maniskill: raises UnsupportedEnvError (ManiSkill3 runs on the PyTorch path: make_torch_env).
    """
    env = resolve_env(name)
    if env.suite == "dmc":
        from reppo_fast.envs.playground_jax import load_playground

        return load_playground(env.name, num_envs=num_envs, impl=impl, episode_length=episode_length,
                               action_repeat=action_repeat, obs_limit=obs_limit, **kw)
    if env.suite == "toy":
        from reppo_fast.envs.action_repeat import ActionRepeat
        from reppo_fast.envs.contract_jax import VecEnv
        from reppo_fast.envs.toy_jax import ToyPointMass

        raw = ToyPointMass(**kw)
        if action_repeat != 1:
            raw = ActionRepeat(raw, action_repeat)
        return VecEnv(raw, num_envs=num_envs, name=env.name, obs_limit=obs_limit,
                      max_episode_steps=_toy_time_limit(episode_length, action_repeat))
    raise UnsupportedEnvError(
        f"{env.name}: ManiSkill3 tasks run on the PyTorch path; use --framework torch"
    )


def make_torch_env(name: str, *, num_envs: int, device: str | torch.device | None = None, impl: str = "jax",
                   episode_length: int | None = None, action_repeat: int = 1, obs_limit: float = math.inf,
                   **kw: Any) -> TorchVecEnv:
    """Resolve `name` and build its env behind the torch contract (contract_torch.TorchVecEnv).

    action_repeat, obs_limit: as in make_env (dmc repeats inside the JAX VecEnv, toy in
    action_repeat_torch.py); ManiSkill raises UnsupportedEnvError for any action_repeat but 1.

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
                                  action_repeat=action_repeat, obs_limit=obs_limit, **kw)
        return PlaygroundTorchEnv(vec_env, device=device)
    if env.suite == "toy":
        import torch

        from reppo_fast.envs.action_repeat_torch import ActionRepeat
        from reppo_fast.envs.contract_torch import BatchedContract
        from reppo_fast.envs.toy_torch import ToyPointMassTorch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        raw = ToyPointMassTorch(num_envs, device=device, **kw)
        if action_repeat != 1:
            raw = ActionRepeat(raw, action_repeat)
        return BatchedContract(raw, max_episode_steps=_toy_time_limit(episode_length, action_repeat),
                               name=env.name, obs_limit=obs_limit)
    if action_repeat != 1:
        # ManiSkill's controllers already run several sim steps per control step (sim_freq / control_freq).
        raise UnsupportedEnvError(f"{env.name}: ManiSkill3 tasks do not support "
                                  f"action_repeat={action_repeat}; use --action-repeat 1")
    from reppo_fast.envs.maniskill import make_maniskill_env

    return make_maniskill_env(env.name, num_envs=num_envs, device=device, episode_length=episode_length,
                              obs_limit=obs_limit, **kw)


def agent_steps(physics_steps: int, action_repeat: int) -> int:
    """Agent steps in an episode of `physics_steps` physics steps: ceil(L / k), as Brax's EpisodeWrapper ends
    it at the first agent step whose physics count reaches L."""
    return -(-int(physics_steps) // action_repeat)


def _toy_time_limit(episode_length: int | None, action_repeat: int) -> int:
    """Agent steps per ToyPointMass episode of episode_length physics steps (default 100)."""
    from reppo_fast.envs.toy_common import DEFAULT_EPISODE_LENGTH

    physics_steps = episode_length if episode_length is not None else DEFAULT_EPISODE_LENGTH
    return agent_steps(physics_steps, action_repeat)
