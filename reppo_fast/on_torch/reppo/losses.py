"""REPPO losses in PyTorch (docs/algorithms.md sections 5 and 6), the twin of on_jax.reppo.losses: same
names, same maths.

Shapes: B minibatch, O obs, A action, H critic width, K bins, S KL samples.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from reppo_fast.on_torch.reppo import networks as nets


class Batch(NamedTuple):
    """A minibatch of flattened rollout transitions; every field is [B, ...] (on_jax.reppo.losses.Batch)."""
    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    returns: torch.Tensor
    next_features: torch.Tensor
    old_mean: torch.Tensor
    old_log_std: torch.Tensor


def q_value(critic, obs, action, kernels, cfg):
    """Decoded scalar Q [B] and the features z [B, H] at (obs, action)."""
    z = nets.critic_encode(critic, obs, action)
    logits = nets.critic_q_logits(critic, z)
    return kernels.hl_gauss_decode(logits, v_min=cfg.reppo.v_min, v_max=cfg.reppo.v_max), z


def critic_loss(critic, batch: Batch, kernels, cfg):
    """mean_B (1 - truncated) * [CE(logits, hist(G)) + aux_coef * (1 - terminated) * mean_{H+1} sq.err]."""
    z = nets.critic_encode(critic, batch.obs, batch.action)
    logits = nets.critic_q_logits(critic, z)
    ce = kernels.hl_gauss_ce(logits, batch.returns, v_min=cfg.reppo.v_min, v_max=cfg.reppo.v_max,
                             sigma_ratio=cfg.reppo.sigma_ratio)
    pred_features, pred_reward = nets.critic_predict(critic, z)
    # Terminal rows have no next state: zero their targets before the square (no NaN loss or gradient).
    terminal = batch.terminated[:, None]
    target = torch.cat([torch.where(terminal, 0.0, batch.next_features),
                        torch.where(terminal, 0.0, batch.reward[:, None])], dim=-1)
    sq_err = (torch.cat([pred_features, pred_reward[:, None]], dim=-1) - target).square()
    aux = torch.where(batch.terminated, 0.0, sq_err.mean(dim=-1))
    per_sample = torch.where(batch.truncated, 0.0, ce + cfg.reppo.aux_coef * aux)
    metrics = {"critic/ce": ce.mean().detach(), "critic/aux": aux.mean().detach(),
               "critic/q": kernels.hl_gauss_decode(logits.detach(), v_min=cfg.reppo.v_min,
                                                   v_max=cfg.reppo.v_max).mean()}
    return per_sample.mean(), metrics


def actor_loss(actor, critic, batch: Batch, noise, old_noise, kernels, cfg):
    """Clipped (or full) KL-regularised pathwise objective plus the two multiplier losses.

    actor: networks.Actor (net, log_alpha, log_beta). The critic is a constant here: callers take
    gradients w.r.t. the actor's parameters only (torch.autograd.grad), so no critic grad is formed.
    noise [B, A] draws the reparameterised action; old_noise [S, B, A] (or None: analytic) the KL.
    """
    mean, log_std = nets.actor_apply(actor.net, batch.obs, cfg.reppo.log_std_min, cfg.reppo.log_std_max)
    out = kernels.tanh_normal(mean, log_std, noise, batch.old_mean, batch.old_log_std, old_noise)
    q, _ = q_value(critic, batch.obs, out.action, kernels, cfg)
    alpha, beta = actor.log_alpha.exp(), actor.log_beta.exp()
    soft_q_loss = alpha.detach() * out.log_prob - q
    if cfg.reppo.actor_objective == "clipped":
        per_state = torch.where(out.kl < cfg.reppo.kl_target, soft_q_loss, beta.detach() * out.kl)
    else:
        per_state = soft_q_loss + beta.detach() * out.kl
    action_size = mean.shape[-1]
    # d/dlog_alpha raises alpha when the entropy -log_prob is below -ent_target_mult * A;
    # d/dlog_beta raises beta when the mean KL exceeds kl_target (see on_jax.reppo.losses.actor_loss).
    entropy_gap = (cfg.reppo.ent_target_mult * action_size - out.log_prob).mean().detach()
    kl_gap = (out.kl - cfg.reppo.kl_target).mean().detach()
    loss = per_state.mean() + alpha * entropy_gap - beta * kl_gap
    metrics = {"actor/q": q.mean().detach(), "actor/entropy": -out.log_prob.mean().detach(),
               "actor/kl": out.kl.mean().detach(), "actor/alpha": alpha.detach(), "actor/beta": beta.detach(),
               "actor/kl_clipped_frac": (out.kl >= cfg.reppo.kl_target).float().mean()}
    return loss, metrics
