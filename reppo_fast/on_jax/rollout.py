"""Rollout and evaluation under lax.scan (spec section 3).

Per step: act with pi_old, step the env, sample a fresh a' ~ pi_old(.|s_{t+1}), evaluate the critic there
for the bootstrap value V_{t+1} and the aux target psi_t, and form the soft reward
r~_t = r_t - gamma * alpha * (1 - terminated_t) * log pi(a'|s_{t+1}).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from reppo_fast.on_jax import networks as nets
from reppo_fast.on_jax.losses import q_value
from reppo_fast.on_jax.normalizer import normalize, norm_update


class Transition(NamedTuple):
    """One rollout, every field [T, N, ...] (T = num_steps, N = num_envs)."""
    obs: jnp.ndarray            # [T, N, O] normalised s_t (with the statistics of step t)
    action: jnp.ndarray         # [T, N, A] clipped action a_t
    reward: jnp.ndarray         # [T, N] raw env reward r_t
    soft_reward: jnp.ndarray    # [T, N] r~_t, the entropy-regularised reward
    terminated: jnp.ndarray     # [T, N] bool
    truncated: jnp.ndarray      # [T, N] bool
    next_value: jnp.ndarray     # [T, N] V_{t+1} = Q(s_{t+1}, a'), a' ~ pi_old
    next_features: jnp.ndarray  # [T, N, H] critic features at (s_{t+1}, a'): the aux target psi_t


class RolloutCarry(NamedTuple):
    env: object              # EnvState
    norm: object             # NormState
    ep_return: jnp.ndarray   # [N] running undiscounted return of each env's current episode


def rollout(actor, critic, carry: RolloutCarry, key, env, kernels, cfg):
    """Collect cfg.num_steps steps. Returns (carry, Transition, stats of finished episodes)."""
    alpha = jnp.exp(actor["log_alpha"])

    def policy(obs, k):
        mean, log_std = nets.actor_apply(actor["net"], obs, cfg.log_std_min, cfg.log_std_max)
        return kernels.tanh_normal(mean, log_std, jax.random.normal(k, mean.shape, mean.dtype))

    def step(c: RolloutCarry, k):
        k_act, k_next = jax.random.split(k)
        norm = norm_update(c.norm, c.env.obs) if cfg.obs_norm else c.norm
        obs = normalize(norm, c.env.obs, cfg.obs_norm)
        action = jnp.clip(policy(obs, k_act).action, -cfg.action_clip, cfg.action_clip)
        env_state, out = env.step(c.env, action)
        next_obs = normalize(norm, out.next_obs, cfg.obs_norm)
        nxt = policy(next_obs, k_next)
        next_value, next_features = q_value(critic, next_obs, nxt.action, kernels, cfg)
        soft_reward = out.reward - cfg.gamma * alpha * jnp.where(out.terminated, 0.0, nxt.log_prob)
        done = out.terminated | out.truncated
        ep_return = c.ep_return + out.reward
        stats = {"episode_return_sum": jnp.sum(jnp.where(done, ep_return, 0.0)),
                 "episodes": jnp.sum(done), "nonfinite": jnp.sum(out.nonfinite)}
        transition = Transition(obs, action, out.reward, soft_reward, out.terminated, out.truncated,
                                next_value, next_features)
        return RolloutCarry(env_state, norm, jnp.where(done, 0.0, ep_return)), (transition, stats)

    carry, (data, stats) = jax.lax.scan(step, carry, jax.random.split(key, cfg.num_steps))
    return carry, data, jax.tree.map(jnp.sum, stats)


def evaluate(policy_mean, norm, env, key, cfg):
    """Mean undiscounted return of one full episode per fresh env, deterministic action tanh(mean), with
    policy_mean(normalised obs [N, O]) -> pre-tanh mean [N, A]; normalisation statistics frozen. Shared by
    every algorithm."""
    def step(c, _):
        env_state, ret, alive = c
        mean = policy_mean(normalize(norm, env_state.obs, cfg.obs_norm))
        env_state, out = env.step(env_state, jnp.clip(jnp.tanh(mean), -cfg.action_clip, cfg.action_clip))
        ret = ret + jnp.where(alive, out.reward, 0.0)
        return (env_state, ret, alive & ~(out.terminated | out.truncated)), None

    state = env.reset(key, random_step_count=False)
    init = (state, jnp.zeros((env.num_envs,), jnp.float32), jnp.ones((env.num_envs,), bool))
    (_, ret, _), _ = jax.lax.scan(step, init, None, length=env.max_episode_steps)
    return jnp.mean(ret)
