"""PPO rollout under lax.scan: act with the current policy, keep what the clipped surrogate and GAE need.

GAE is the lambda-return minus the value: with next_values V(s_{t+1}) of the true next observations,
G_t - V(s_t) = delta_t + gamma lmbda (G_{t+1} - V(s_{t+1})) = sum_k (gamma lmbda)^k delta_{t+k} within an
episode, so advantages come from the `lambda_returns` op. (The running normaliser moves between steps, so
next_values[t] and values[t+1] see s_{t+1} through slightly different statistics; the recursion above uses
next_values[t], the lambda-return's own bootstrap.)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from reppo_fast.on_jax import ppo_networks as nets
from reppo_fast.on_jax.normalizer import normalize, norm_update
from reppo_fast.on_jax.ppo_losses import gaussian_log_prob
from reppo_fast.on_jax.rollout import RolloutCarry


class PpoTransition(NamedTuple):
    """One rollout, every field [T, N, ...] (T = num_steps, N = num_envs)."""
    obs: jnp.ndarray         # [T, N, O] normalised s_t (with the statistics of step t)
    raw_action: jnp.ndarray  # [T, N, A] pre-tanh action u_t; the env got clip(tanh(u_t))
    log_prob: jnp.ndarray    # [T, N] log N(u_t; mean, std) of the acting policy
    value: jnp.ndarray       # [T, N] V(s_t)
    reward: jnp.ndarray      # [T, N] raw env reward r_t
    terminated: jnp.ndarray  # [T, N] bool
    truncated: jnp.ndarray   # [T, N] bool
    next_value: jnp.ndarray  # [T, N] V(s_{t+1}) of the true next observation (the final one at a reset)


def rollout(actor, critic, carry: RolloutCarry, key, env, kernels, cfg):
    """Collect cfg.num_steps steps. Returns (carry, PpoTransition, stats of finished episodes)."""
    def step(c: RolloutCarry, k):
        norm = norm_update(c.norm, c.env.obs) if cfg.obs_norm else c.norm
        obs = normalize(norm, c.env.obs, cfg.obs_norm)
        mean, log_std = nets.actor_apply(actor, obs)
        noise = jax.random.normal(k, mean.shape, mean.dtype)
        raw_action = mean + jnp.exp(log_std) * noise
        action = jnp.clip(kernels.tanh_normal(mean, log_std, noise).action, -cfg.action_clip, cfg.action_clip)
        env_state, out = env.step(c.env, action)
        next_value = nets.critic_apply(critic, normalize(norm, out.next_obs, cfg.obs_norm))
        done = out.terminated | out.truncated
        ep_return = c.ep_return + out.reward
        stats = {"episode_return_sum": jnp.sum(jnp.where(done, ep_return, 0.0)),
                 "episodes": jnp.sum(done), "nonfinite": jnp.sum(out.nonfinite)}
        transition = PpoTransition(obs, raw_action, gaussian_log_prob(mean, log_std, raw_action),
                                   nets.critic_apply(critic, obs), out.reward, out.terminated, out.truncated,
                                   next_value)
        return RolloutCarry(env_state, norm, jnp.where(done, 0.0, ep_return)), (transition, stats)

    carry, (data, stats) = jax.lax.scan(step, carry, jax.random.split(key, cfg.num_steps))
    return carry, data, jax.tree.map(jnp.sum, stats)


def gae(data: PpoTransition, kernels, cfg):
    """(advantages, returns) [T, N]: G = lambda_returns(reward_scaling * r, V(s_{t+1})), A = G - V(s_t)."""
    returns = kernels.lambda_returns(cfg.reward_scaling * data.reward, data.next_value, data.terminated,
                                     data.truncated, gamma=cfg.gamma, lmbda=cfg.lmbda)
    return returns - data.value, returns
