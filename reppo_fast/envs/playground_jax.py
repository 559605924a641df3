"""mujoco_playground adapter: load a DM Control task as a raw MJX env and wrap it in the contract."""

from __future__ import annotations

import math

from reppo_fast.envs import agent_steps
from reppo_fast.envs.action_repeat import ActionRepeat
from reppo_fast.envs.contract_jax import VecEnv


def _registry():
    try:
        from mujoco_playground import registry
    except ImportError as err:
        raise ImportError(
            "mujoco_playground is not installed: `pip install playground==0.2.0` (DM Control tasks on "
            "the JAX path need it)"
        ) from err
    return registry


def load_playground(name: str, *, num_envs: int, impl: str = "jax", episode_length: int | None = None,
                    action_repeat: int = 1, obs_limit: float = math.inf) -> VecEnv:
    """Load playground env `name` (a canonical name; see names.resolve_env) behind the contract.

    impl: MJX backend, "jax" or "warp"; playground defaults to "warp", but "jax" is 3-30x faster on
      CPU, so it is our default. episode_length: the time limit in raw physics steps (default: the task
      config's, 1000 for every DM Control task). action_repeat: physics steps per agent step (k); an
      episode then has ceil(episode_length / k) agent steps, as under Brax's EpisodeWrapper.
      obs_limit: VecEnv's blow-up guard.
    """
    registry = _registry()
    config = registry.get_default_config(name)
    # Playground envs do not repeat actions themselves: a task config's `action_repeat` is only read by
    # training code that builds Brax's EpisodeWrapper from it, and every DM Control task sets 1. Repeats
    # come from cfg.action_repeat (ours); multiplying in a task's own value would stack two repeats nobody
    # asked for together, so a task that sets one is refused rather than guessed at.
    if config.action_repeat != 1:
        raise ValueError(f"{name}: the task config's action_repeat={config.action_repeat} is not supported; "
                         f"set --action-repeat {config.action_repeat} instead")
    raw = registry.load(name, config_overrides={"impl": impl})
    if action_repeat != 1:
        raw = ActionRepeat(raw, action_repeat)
    physics_steps = episode_length if episode_length is not None else config.episode_length
    return VecEnv(raw, num_envs=num_envs, max_episode_steps=agent_steps(physics_steps, action_repeat),
                  name=name, obs_limit=obs_limit)
