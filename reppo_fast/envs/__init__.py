"""Environments behind one contract (contract.py): `make_env(name, num_envs=...) -> VecEnv`.

Heavy imports (jax, mujoco_playground) happen inside make_env, so `reppo_fast.envs.names` stays
cheap to import for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reppo_fast.envs.names import EnvName, UnknownEnvError, UnsupportedEnvError, resolve_env

if TYPE_CHECKING:
    from reppo_fast.envs.contract import VecEnv

__all__ = ["EnvName", "UnknownEnvError", "UnsupportedEnvError", "make_env", "resolve_env"]


def make_env(name: str, *, num_envs: int, impl: str = "jax", episode_length: int | None = None,
             **kw: Any) -> VecEnv:
    """Resolve `name` (aliases allowed; prints nothing) and build its JAX VecEnv.

    dmc: mujoco_playground with MJX backend `impl`; `episode_length` defaults to the task's (1000).
    toy: ToyPointMass; `episode_length` defaults to 100; kw go to ToyPointMass (action_size,
      nan_above). maniskill: raises UnsupportedEnvError (the PyTorch path is not built yet).
    """
    env = resolve_env(name)
    if env.suite == "dmc":
        from reppo_fast.envs.playground import load_playground

        return load_playground(env.name, num_envs=num_envs, impl=impl, episode_length=episode_length,
                               **kw)
    if env.suite == "toy":
        from reppo_fast.envs.contract import VecEnv
        from reppo_fast.envs.toy import ToyPointMass
        from reppo_fast.envs.toy_common import DEFAULT_EPISODE_LENGTH

        max_episode_steps = episode_length if episode_length is not None else DEFAULT_EPISODE_LENGTH
        return VecEnv(ToyPointMass(**kw), num_envs=num_envs, max_episode_steps=max_episode_steps,
                      name=env.name)
    raise UnsupportedEnvError(
        f"{env.name}: ManiSkill3 tasks run on the PyTorch path (--framework torch), not built yet"
    )
