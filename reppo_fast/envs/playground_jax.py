"""mujoco_playground adapter: load a DM Control task as a raw MJX env and wrap it in the contract."""

from __future__ import annotations

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


def load_playground(name: str, *, num_envs: int, impl: str = "jax",
                    episode_length: int | None = None) -> VecEnv:
    """Load playground env `name` (a canonical name; see names.resolve_env) behind the contract.

    impl: MJX backend, "jax" or "warp"; playground defaults to "warp", but "jax" is 3-30x faster on
      CPU, so it is our default. episode_length: the time limit in env steps (default: the task
      config's, 1000 for every DM Control task).
    """
    registry = _registry()
    config = registry.get_default_config(name)
    # Playground envs do not repeat actions themselves: `action_repeat` in a config is read by
    # brax's training wrapper, which repeats each action and counts episode_length in raw steps.
    # Every DM Control task has action_repeat 1; we have no repeat wrapper, so refuse anything else
    # rather than silently changing the control rate.
    if config.action_repeat != 1:
        raise ValueError(f"{name}: action_repeat={config.action_repeat} is not supported (only 1)")
    raw = registry.load(name, config_overrides={"impl": impl})
    max_episode_steps = int(episode_length if episode_length is not None else config.episode_length)
    return VecEnv(raw, num_envs=num_envs, max_episode_steps=max_episode_steps, name=name)
