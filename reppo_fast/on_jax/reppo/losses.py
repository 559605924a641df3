"""REPPO losses as pure functions (docs/algorithms.md sections 5 and 6). All hot ops go through the kernel
binding.

Shapes: B minibatch, O obs, A action, H critic width, K bins, S KL samples.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from reppo_fast.on_jax.reppo import networks as nets


class Batch(NamedTuple):
    """A minibatch of flattened rollout transitions; every field is [B, ...]."""
    obs: jnp.ndarray            # [B, O] normalised observation s_t
    action: jnp.ndarray         # [B, A] action taken (clipped)
    reward: jnp.ndarray         # [B] raw env reward r_t (aux target)
    terminated: jnp.ndarray     # [B] bool
    truncated: jnp.ndarray      # [B] bool
    returns: jnp.ndarray        # [B] soft lambda-return G_t (critic target)
    next_features: jnp.ndarray  # [B, H] critic features psi_t at (s_{t+1}, a'), the aux target
    old_mean: jnp.ndarray       # [B, A] pi_old mean at s_t
    old_log_std: jnp.ndarray    # [B, A] pi_old log std at s_t


def q_value(critic_params, obs, action, kernels, cfg):
    """Decoded scalar Q [B] and the features z [B, H] at (obs, action)."""
    z = nets.critic_encode(critic_params, obs, action)
    logits = nets.critic_q_logits(critic_params, z)
    return kernels.hl_gauss_decode(logits, v_min=cfg.reppo.v_min, v_max=cfg.reppo.v_max), z


def critic_loss(critic_params, batch: Batch, kernels, cfg):
    """mean_B (1 - truncated) * [CE(logits, hist(G)) + aux_coef * (1 - terminated) * mean_{H+1} sq.err]."""
    z = nets.critic_encode(critic_params, batch.obs, batch.action)
    logits = nets.critic_q_logits(critic_params, z)
    ce = kernels.hl_gauss_ce(logits, batch.returns, v_min=cfg.reppo.v_min, v_max=cfg.reppo.v_max,
                             sigma_ratio=cfg.reppo.sigma_ratio)
    pred_features, pred_reward = nets.critic_predict(critic_params, z)
    # Terminal rows have no next state: zero their targets BEFORE the square, so that a stray inf there
    # gives neither a NaN loss nor a NaN gradient (where() after the square still back-propagates 0*inf).
    terminal = batch.terminated[:, None]
    target = jnp.concatenate([jnp.where(terminal, 0.0, batch.next_features),
                              jnp.where(terminal, 0.0, batch.reward[:, None])], axis=-1)
    sq_err = jnp.square(jnp.concatenate([pred_features, pred_reward[:, None]], axis=-1) - target)
    aux = jnp.where(batch.terminated, 0.0, jnp.mean(sq_err, axis=-1))
    per_sample = jnp.where(batch.truncated, 0.0, ce + cfg.reppo.aux_coef * aux)
    metrics = {"critic/ce": jnp.mean(ce), "critic/aux": jnp.mean(aux),
               "critic/q": jnp.mean(kernels.hl_gauss_decode(logits, v_min=cfg.reppo.v_min,
                                                            v_max=cfg.reppo.v_max))}
    return jnp.mean(per_sample), metrics


def actor_loss(actor_params, critic_params, batch: Batch, noise, old_noise, kernels, cfg):
    """Clipped (or full) KL-regularised pathwise objective plus the two multiplier losses.

    actor_params holds the network and the scalars log_alpha, log_beta; critic_params is a constant here.
    noise [B, A] draws the reparameterised action; old_noise [S, B, A] (or None: analytic) the KL.
    """
    mean, log_std = nets.actor_apply(actor_params["net"], batch.obs, cfg.reppo.log_std_min,
                                     cfg.reppo.log_std_max)
    out = kernels.tanh_normal(mean, log_std, noise, batch.old_mean, batch.old_log_std, old_noise)
    q, _ = q_value(jax.lax.stop_gradient(critic_params), batch.obs, out.action, kernels, cfg)
    log_alpha, log_beta = actor_params["log_alpha"], actor_params["log_beta"]
    alpha, beta = jnp.exp(log_alpha), jnp.exp(log_beta)
    alpha_sg, beta_sg = jax.lax.stop_gradient(alpha), jax.lax.stop_gradient(beta)
    soft_q_loss = alpha_sg * out.log_prob - q
    if cfg.reppo.actor_objective == "clipped":
        per_state = jnp.where(out.kl < cfg.reppo.kl_target, soft_q_loss, beta_sg * out.kl)
    else:
        per_state = soft_q_loss + beta_sg * out.kl
    action_size = mean.shape[-1]
    # Gradient descent on log_alpha moves alpha up when the entropy -log_prob is below the target
    # -ent_target_mult * A; on log_beta moves beta up when the mean KL exceeds kl_target.
    entropy_gap = jax.lax.stop_gradient(jnp.mean(cfg.reppo.ent_target_mult * action_size - out.log_prob))
    kl_gap = jax.lax.stop_gradient(jnp.mean(out.kl - cfg.reppo.kl_target))
    loss = jnp.mean(per_state) + alpha * entropy_gap - beta * kl_gap
    metrics = {"actor/q": jnp.mean(q), "actor/entropy": -jnp.mean(out.log_prob), "actor/kl": jnp.mean(out.kl),
               "actor/alpha": alpha, "actor/beta": beta,
               "actor/kl_clipped_frac": jnp.mean(out.kl >= cfg.reppo.kl_target)}
    return loss, metrics
