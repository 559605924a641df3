"""The JAX environment contract (docs/algorithms.md section 1): batching, time limits, true terminal
observations, non-finite physics handling and auto-reset, as pure jit-able functions over a raw single-env.

A raw env has mujoco_playground's MjxEnv single-env API: `reset(key) -> state`,
`step(state, action) -> state`, with state.obs [O], state.reward [], state.done [] (float), and the
attributes `observation_size` and `action_size`. We do not use upstream auto-reset wrappers: they
overwrite the terminal observation, which truncated steps need for bootstrapping.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class EnvState(NamedTuple):
    """Batched state of N envs; a pytree, so it can be carried through scans and checkpointed."""

    raw: Any               # the raw env state, vmapped: every leaf has leading dim N
    obs: jax.Array         # [N, O] observation to act on (already reset where an episode ended)
    step_count: jax.Array  # [N] int32 steps taken in the current episode
    key: jax.Array         # PRNG key for resets


class EnvStep(NamedTuple):
    """What one batched step returns besides the new EnvState."""

    obs: jax.Array         # [N, O] observation for the next action (reset obs where the episode ended)
    next_obs: jax.Array    # [N, O] TRUE observation after the action, before auto-reset (sanitised)
    reward: jax.Array      # [N] float32 (0 where nonfinite)
    terminated: jax.Array  # [N] bool: real terminal state, no bootstrap (raw done, or nonfinite)
    truncated: jax.Array   # [N] bool: time limit reached and not terminated: bootstrap from next_obs
    nonfinite: jax.Array   # [N] bool: the physics blew up this step: NaN/inf, or an obs beyond obs_limit
    #                        (the caller counts them)


def _nonfinite_rows(x: jax.Array) -> jax.Array:
    """[N, ...] -> [N] bool: any non-finite entry in the row."""
    return ~jnp.all(jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1)


def blown_up_rows(obs: jax.Array, limit: float) -> jax.Array:
    """[N, ...] -> [N] bool: an entry is non-finite or beyond +-limit (the huge but finite values MJX passes
    through on its way to NaN; inf: non-finite ones only)."""
    x = obs.reshape(obs.shape[0], -1)
    return ~jnp.all(jnp.isfinite(x) & (jnp.abs(x) <= limit), axis=1)


def select_rows(mask: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Per-env select over every leaf of two batched pytrees; mask [N] bool."""
    def select(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)
    return jax.tree.map(select, on_true, on_false)


class VecEnv:
    """N copies of a raw env behind the contract; `reset` and `step` are pure and jit-able."""

    def __init__(self, raw: Any, *, num_envs: int, max_episode_steps: int, name: str,
                 dtype: Any = jnp.float32, obs_limit: float = math.inf):
        """obs_limit: an observation with an entry beyond +-obs_limit counts as blown-up physics, like a
        non-finite one (cfg.obs_limit; inf: only non-finite values do)."""
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.obs_limit = float(obs_limit)
        self.raw = raw
        self.num_envs = num_envs
        self.obs_size = int(raw.observation_size)
        self.action_size = int(raw.action_size)
        self.max_episode_steps = max_episode_steps
        self.name = name
        # obs, next_obs and reward leave the contract in this dtype whatever the physics computes in (a cast,
        # so gradients still flow through it): float32 for training; float64 only to check gradients.
        self.dtype = jnp.dtype(dtype)
        # The physics keeps the matmul precision JAX had when the env was made (its default, or the global
        # 'highest' mujoco_playground sets for long Swimmer chains), also when traced inside the trainer's
        # network-precision context (reppo_fast.precision).
        self.physics_precision = jax.config.jax_default_matmul_precision or "default"

    def __repr__(self) -> str:
        return (f"VecEnv({self.name!r}, num_envs={self.num_envs}, obs_size={self.obs_size}, "
                f"action_size={self.action_size}, max_episode_steps={self.max_episode_steps})")

    def _raw_reset(self, key: jax.Array) -> Any:
        with jax.default_matmul_precision(self.physics_precision):
            return jax.vmap(self.raw.reset)(jax.random.split(key, self.num_envs))

    def reset(self, key: jax.Array, *, random_step_count: bool = True) -> EnvState:
        """Fresh episodes in all N envs.

        random_step_count=True starts each env's counter uniformly in [0, max_episode_steps), so the
        first time limits are spread out and episodes stay desynchronised (training); False starts
        every counter at 0 (evaluation: full episodes).
        """
        key, reset_key, count_key = jax.random.split(key, 3)
        raw = self._raw_reset(reset_key)
        if random_step_count:
            step_count = jax.random.randint(count_key, (self.num_envs,), 0, self.max_episode_steps)
        else:
            step_count = jnp.zeros((self.num_envs,), jnp.int32)
        return EnvState(raw, raw.obs.astype(self.dtype), step_count.astype(jnp.int32), key)

    def step(self, state: EnvState, action: jax.Array) -> tuple[EnvState, EnvStep]:
        """Step all envs with action [N, A] (passed through unclipped), then auto-reset ended ones."""
        with jax.default_matmul_precision(self.physics_precision):
            raw = jax.vmap(self.raw.step)(state.raw, action)
        nonfinite = blown_up_rows(raw.obs, self.obs_limit) | _nonfinite_rows(raw.reward)
        data = getattr(raw, "data", None)
        for field in ("qpos", "qvel"):
            if hasattr(data, field):
                nonfinite = nonfinite | _nonfinite_rows(getattr(data, field))
        # A blown-up env's next_obs becomes the obs it acted on (finite and in-distribution, unlike
        # zeros, should anything read it) and its reward 0; `where`, since NaN * 0 is NaN.
        next_obs = jnp.where(nonfinite[:, None], state.obs, raw.obs.astype(self.dtype))
        reward = jnp.where(nonfinite, 0.0, raw.reward).astype(self.dtype)
        terminated = (raw.done != 0) | nonfinite
        step_count = state.step_count + 1
        truncated = (step_count >= self.max_episode_steps) & ~terminated
        ended = terminated | truncated

        # Reset costs one vmapped raw.reset per step whether or not any env ended: with
        # desynchronised episodes some env ends on almost every step, so a cond would not save it.
        key, reset_key = jax.random.split(state.key)
        # A fresh episode's first state depends on the key only; stop_gradient makes the cut explicit for
        # callers differentiating through step (RPO): no gradient crosses an episode boundary.
        fresh = jax.lax.stop_gradient(self._raw_reset(reset_key))
        raw = select_rows(ended, fresh, raw)
        obs = jnp.where(ended[:, None], fresh.obs.astype(self.dtype), next_obs)
        step_count = jnp.where(ended, 0, step_count)
        new_state = EnvState(raw, obs, step_count, key)
        return new_state, EnvStep(obs, next_obs, reward, terminated, truncated, nonfinite)


def bootstrap_terminations(step: EnvStep) -> EnvStep:
    """Every episode end bootstraps (cfg.bootstrap_terminations): a termination becomes a truncation, so the
    target bootstraps from the value of the true next_obs, except a non-finite one, whose next_obs is a
    sanitised placeholder (the obs it acted on) that must never be bootstrapped from:

        terminated' = terminated & nonfinite        truncated' = truncated | (terminated & ~nonfinite)

    The contract's truncated already excludes terminated, so the two stay disjoint.
    """
    return step._replace(terminated=step.terminated & step.nonfinite,
                         truncated=step.truncated | (step.terminated & ~step.nonfinite))
