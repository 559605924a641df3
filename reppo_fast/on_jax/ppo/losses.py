"""The PPO loss (clipped surrogate, value regression, entropy bonus) as a pure function.

Shapes: B minibatch, O obs, A action.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp

from reppo_fast.on_jax.common import pooled_mean_std
from reppo_fast.on_jax.data_parallel import SINGLE
from reppo_fast.on_jax.ppo import networks as nets

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
ADV_EPS = 1e-8


class PpoBatch(NamedTuple):
    """A minibatch of flattened rollout transitions; every field is [B, ...]."""
    obs: jnp.ndarray         # [B, O] normalised observation s_t
    raw_action: jnp.ndarray  # [B, A] pre-tanh action u_t (a_t = tanh(u_t))
    log_prob: jnp.ndarray    # [B] log N(u_t; mean_old, std_old) under the acting policy
    advantage: jnp.ndarray   # [B] GAE advantage A_t = G_t - V_old(s_t)
    returns: jnp.ndarray     # [B] lambda-return G_t (value target)


def gaussian_log_prob(mean, log_std, raw_action):
    """log N(u; mean, exp(log_std)) summed over A: [..., A] -> [...]. The tanh Jacobian term
    -sum log(1 - tanh(u)^2) depends on u only, so it cancels in the PPO ratio and is left out."""
    z = (raw_action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - HALF_LOG_2PI, axis=-1)


def ppo_loss(actor, critic, batch: PpoBatch, noise, kernels, cfg, dp=SINGLE):
    """Clipped surrogate + value_coef * mean (V - G)^2 - entropy_coef * H. noise [B, A] draws the one
    reparameterised sample whose -log pi estimates the tanh-Gaussian entropy H (the tanh_normal op).
    Advantages are normalised with the mean and std of the whole minibatch, over every data-parallel
    device's part of it (Brax's pmap normalises each device's part alone)."""
    mean, log_std = nets.actor_apply(actor, batch.obs)
    ratio = jnp.exp(gaussian_log_prob(mean, log_std, batch.raw_action) - batch.log_prob)
    adv = batch.advantage
    if cfg.ppo.normalize_advantage:
        mean_adv, std_adv = pooled_mean_std(adv, dp)
        adv = (adv - mean_adv) / (std_adv + ADV_EPS)
    clipped = jnp.clip(ratio, 1.0 - cfg.ppo.clip_eps, 1.0 + cfg.ppo.clip_eps)
    policy_loss = -jnp.mean(jnp.minimum(ratio * adv, clipped * adv))
    value_loss = jnp.mean(jnp.square(nets.critic_apply(critic, batch.obs) - batch.returns))
    entropy = -jnp.mean(kernels.tanh_normal(mean, log_std, noise).log_prob)
    loss = policy_loss + cfg.ppo.value_coef * value_loss - cfg.ppo.entropy_coef * entropy
    metrics = {"actor/policy_loss": policy_loss, "critic/value_loss": value_loss, "actor/entropy": entropy,
               "actor/clip_fraction": jnp.mean(jnp.abs(ratio - 1.0) > cfg.ppo.clip_eps),
               "actor/approx_kl": jnp.mean(ratio - 1.0 - jnp.log(ratio)),
               "actor/std": jnp.mean(jnp.exp(log_std))}
    return loss, metrics
