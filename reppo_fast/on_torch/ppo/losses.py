"""The PPO loss in PyTorch, the twin of on_jax.ppo.losses (same names, same maths)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from reppo_fast.on_torch.common import pooled_mean_std
from reppo_fast.on_torch.data_parallel import SINGLE
from reppo_fast.on_torch.ppo import networks as nets

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
ADV_EPS = 1e-8


class PpoBatch(NamedTuple):
    """A minibatch of flattened rollout transitions; every field is [B, ...] (see on_jax.ppo.losses)."""
    obs: torch.Tensor         # [B, O]
    raw_action: torch.Tensor  # [B, A] pre-tanh action u_t
    log_prob: torch.Tensor    # [B] log N(u_t; mean_old, std_old)
    advantage: torch.Tensor   # [B] GAE advantage
    returns: torch.Tensor     # [B] lambda-return (value target)


def gaussian_log_prob(mean, log_std, raw_action):
    """log N(u; mean, exp(log_std)) summed over A (the tanh Jacobian cancels in the PPO ratio)."""
    z = (raw_action - mean) * torch.exp(-log_std)
    return (-0.5 * z.square() - log_std - HALF_LOG_2PI).sum(dim=-1)


def ppo_loss(actor, critic, batch: PpoBatch, noise, kernels, cfg, dp=SINGLE):
    """Clipped surrogate + value_coef * mean (V - G)^2 - entropy_coef * H (H: -log pi of one
    reparameterised sample per state, through the tanh_normal op). Advantages are normalised over the
    whole minibatch, every data-parallel rank's part of it (see on_jax.ppo.losses.ppo_loss)."""
    mean, log_std = nets.actor_apply(actor, batch.obs)
    ratio = torch.exp(gaussian_log_prob(mean, log_std, batch.raw_action) - batch.log_prob)
    adv = batch.advantage
    if cfg.ppo.normalize_advantage:
        mean_adv, std_adv = pooled_mean_std(adv, dp)  # population std, as jnp.std
        adv = (adv - mean_adv) / (std_adv + ADV_EPS)
    clipped = ratio.clamp(1.0 - cfg.ppo.clip_eps, 1.0 + cfg.ppo.clip_eps)
    policy_loss = -torch.minimum(ratio * adv, clipped * adv).mean()
    value_loss = (nets.critic_apply(critic, batch.obs) - batch.returns).square().mean()
    entropy = -kernels.tanh_normal(mean, log_std, noise).log_prob.mean()
    loss = policy_loss + cfg.ppo.value_coef * value_loss - cfg.ppo.entropy_coef * entropy
    with torch.no_grad():
        metrics = {"actor/policy_loss": policy_loss.detach(), "critic/value_loss": value_loss.detach(),
                   "actor/entropy": entropy.detach(),
                   "actor/clip_fraction": ((ratio - 1.0).abs() > cfg.ppo.clip_eps).float().mean(),
                   "actor/approx_kl": (ratio - 1.0 - torch.log(ratio)).mean(),
                   "actor/std": torch.exp(log_std).mean()}
    return loss, metrics
