"""RPO's objectives as pure functions (docs/algorithms.md section 11; ../shared/rpo_spec.md section 3).

Shapes: T window steps, N envs, B = a minibatch of T*N samples, O obs, A action.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from reppo_fast.on_jax.ppo.losses import gaussian_log_prob
from reppo_fast.on_jax.rpo import networks as nets

HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)


class RpoBatch(NamedTuple):
    """Flattened window samples, every field [B, ...]."""
    obs: jnp.ndarray          # [B, O] normalised s_k, as the acting policy saw it
    z: jnp.ndarray            # [B, A] pre-tanh action z_k = mu_old + sigma_old eps_k
    mean_old: jnp.ndarray     # [B, A] mu_old(s_k)
    log_std_old: jnp.ndarray  # [B, A] log sigma_old(s_k)
    action_grad: jnp.ndarray  # [B, A] g_k = dJ/dz_k, sanitised (and clipped per sample)
    returns: jnp.ndarray      # [B] TD(lambda) target of the V critics
    nonfinite: jnp.ndarray    # [B] bool: g was non-finite there before sanitising (counted in the metrics)


def window_objective(reward, terminated, truncated, next_value, gamma):
    """SHAC's window return summed over envs, all inputs [T, N]:

        J = sum_n sum_k gamma^{c_k} r_k + gamma^{c_k + 1} V_target(s_{k+1}) [truncated or window end]

    c_k counts the steps since the segment start (the window start or the step after an episode end).
    A terminated step has no bootstrap; a truncated one bootstraps from the true next observation."""
    ended = terminated | truncated

    def count(c, done):
        return jnp.where(done, 0, c + 1), c

    _, c = jax.lax.scan(count, jnp.zeros(reward.shape[1], jnp.int32), ended)
    discount = gamma ** c.astype(reward.dtype)
    last = jnp.zeros_like(ended).at[-1].set(True)
    bootstraps = (truncated | last) & ~terminated
    return jnp.sum(discount * reward + jnp.where(bootstraps, gamma * discount * next_value, 0.0))


def pre_tanh_grad(action_grad, z, action_clip: float):
    """dJ/dz from dJ/da with a = clip(tanh z, +-action_clip): da/dz = 1 - tanh(z)^2 inside the clip, else
    0."""
    t = jnp.tanh(z)
    return jnp.where(jnp.abs(t) < action_clip, action_grad * (1.0 - t * t), 0.0)


def sanitise(action_grad, grad_clip: float | None):
    """Per sample ([..., A]): a non-finite g becomes 0; then its norm is clipped to grad_clip.
    Returns (g, [...] bool: the samples that were non-finite)."""
    nonfinite = ~jnp.all(jnp.isfinite(action_grad), axis=-1)
    g = jnp.where(nonfinite[..., None], 0.0, action_grad)
    if grad_clip is not None:
        norm = jnp.linalg.norm(g, axis=-1, keepdims=True)
        g = g * jnp.minimum(1.0, grad_clip / jnp.maximum(norm, 1e-12))
    return g, nonfinite


def gaussian_kl(mean_p, log_std_p, mean_q, log_std_q):
    """KL(N(mean_p, std_p) || N(mean_q, std_q)) summed over A."""
    return jnp.sum(log_std_q - log_std_p + 0.5 * jnp.exp(2.0 * (log_std_p - log_std_q))
                   + 0.5 * jnp.square((mean_p - mean_q) * jnp.exp(-log_std_q)) - 0.5, axis=-1)


def regenerate(mean, log_std, z):
    """z~ = mean + std * sg((z - mean) / std): numerically z, with the current policy's d/dtheta."""
    eps = jax.lax.stop_gradient((z - mean) * jnp.exp(-log_std))
    return mean + jnp.exp(log_std) * eps


def surrogate_weight(log_ratio, rpo):
    """w = sg(rho * 1[1 - low <= rho <= 1 + high]) (`mask`) or sg(clip(rho, 1 - low, 1 + high)) (`clip`)."""
    rho = jnp.exp(log_ratio)
    low, high = 1.0 - rpo.rpo_clip_low, 1.0 + rpo.rpo_clip_high
    if rpo.rpo_clip_mode == "mask":
        w = jnp.where((rho >= low) & (rho <= high), rho, 0.0)
    else:
        w = jnp.clip(rho, low, high)
    return jax.lax.stop_gradient(w)


def actor_loss(actor, mb: RpoBatch, rpo):
    """-(lambda_surr mean w <sg(g), z~>) + lambda_KL mean KL - lambda_ent mean H: at theta = theta_old the
    gradient is -mean_k <g_k, dz_k/dtheta>, the SHAC gradient of J / (T N) (its KL gradient is 0 there)."""
    mean, log_std = nets.actor_apply(actor, mb.obs)
    z_regen = regenerate(mean, log_std, mb.z)
    log_ratio = gaussian_log_prob(mean, log_std, mb.z) - gaussian_log_prob(mb.mean_old, mb.log_std_old, mb.z)
    w = surrogate_weight(log_ratio, rpo)
    surrogate = jnp.mean(w * jnp.sum(jax.lax.stop_gradient(mb.action_grad) * z_regen, axis=-1))
    if rpo.rpo_kl_dir == "old_new":
        kl = gaussian_kl(mb.mean_old, mb.log_std_old, mean, log_std)
    else:
        kl = gaussian_kl(mean, log_std, mb.mean_old, mb.log_std_old)
    entropy = jnp.sum(log_std + HALF_LOG_2PI_E, axis=-1)
    loss = (-rpo.rpo_surr_coef * surrogate + rpo.rpo_kl_coef * jnp.mean(kl)
            - rpo.rpo_ent_coef * jnp.mean(entropy))
    inside = jnp.mean((w > 0).astype(jnp.float32)) if rpo.rpo_clip_mode == "mask" else jnp.float32(1.0)
    return loss, {"actor/surrogate": surrogate, "actor/kl": jnp.mean(kl), "actor/entropy": jnp.mean(entropy),
                  "actor/inside_fraction": inside, "actor/std": jnp.mean(jnp.exp(log_std))}


def critic_loss(online, mb: RpoBatch):
    """mean over the C critics and the batch of (V_i(s) - G)^2."""
    v = nets.values(online, mb.obs)
    loss = jnp.mean(jnp.square(v - mb.returns))
    return loss, {"critic/loss": loss, "critic/value": jnp.mean(v)}
