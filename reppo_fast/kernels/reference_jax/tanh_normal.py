"""Tanh-squashed diagonal Gaussian: sample, log-prob and KL to a frozen old policy (docs/algorithms.md
sections 2, 6)."""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._dtype import compute_dtype

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


class TanhNormalOut(NamedTuple):
    action: jax.Array  # [B, A] tanh(u), not clipped
    log_prob: jax.Array  # [B] log pi(action | s)
    kl: jax.Array | None  # [B] KL(pi_old || pi), None when no old policy was given


def tanh_normal(mean, log_std, noise, old_mean=None, old_log_std=None, old_noise=None) -> TanhNormalOut:
    """Reparameterised tanh-Gaussian sample, its log-prob and the forward KL from the old policy.

    Shapes: mean, log_std, noise, old_mean, old_log_std [B, A]; old_noise [S, B, A].
    Dtypes: outputs in float32 for float32 inputs, float64 for float64; bf16/f16 inputs are computed
    in float32 and returned as float32.

        u        = mean + exp(log_std) * noise                                   (pre-tanh sample)
        action   = tanh(u)                                                      [B, A], not clipped
        log_prob = sum_A [ -noise^2/2 - log_std - log(2 pi)/2 - log(1 - tanh(u)^2) ]            [B]
        log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))        (stable for any u, uses u not atanh)

    kl [B] (None when old_mean is None), KL(pi_old || pi) in pre-tanh space (the tanh Jacobian
    cancels between the two log-densities):
      old_noise given: u_j = old_mean + exp(old_log_std) old_noise_j and
          kl = mean_j sum_A [ log N(u_j; old_mean, old_std) - log N(u_j; mean, std) ]
      old_noise None: the exact Gaussian KL
          kl = sum_A [ log_std - old_log_std + (old_std^2 + (old_mean - mean)^2) / (2 std^2) - 1/2 ]

    Gradients flow to mean and log_std only: noise and old_noise are samples and pi_old is frozen,
    so those inputs are stop-gradient inside the op.
    """
    if (old_mean is None) != (old_log_std is None):
        raise ValueError("old_mean and old_log_std must be given together")
    if old_noise is not None and old_mean is None:
        raise ValueError("old_noise needs old_mean and old_log_std")
    dtype = compute_dtype(mean, log_std, noise, old_mean, old_log_std, old_noise)
    mean = jnp.asarray(mean).astype(dtype)
    log_std = jnp.asarray(log_std).astype(dtype)
    noise = jax.lax.stop_gradient(jnp.asarray(noise).astype(dtype))

    u = mean + jnp.exp(log_std) * noise
    log_one_minus_tanh_sq = 2.0 * (_LOG_2 - u - jax.nn.softplus(-2.0 * u))
    # (u - mean) / std == noise: using noise directly is exact and is the pathwise log-density.
    log_prob = jnp.sum(-0.5 * noise**2 - log_std - _HALF_LOG_2PI - log_one_minus_tanh_sq, axis=-1)

    kl = None
    if old_mean is not None:
        old_mean = jax.lax.stop_gradient(jnp.asarray(old_mean).astype(dtype))
        old_log_std = jax.lax.stop_gradient(jnp.asarray(old_log_std).astype(dtype))
        if old_noise is None:
            kl = _analytic_kl(mean, log_std, old_mean, old_log_std)
        else:
            old_noise = jax.lax.stop_gradient(jnp.asarray(old_noise).astype(dtype))
            if old_noise.shape[1:] != mean.shape:
                raise ValueError(f"old_noise must be [S, *{mean.shape}], got {old_noise.shape}")
            kl = _sampled_kl(mean, log_std, old_mean, old_log_std, old_noise)
    return TanhNormalOut(jnp.tanh(u), log_prob, kl)


def _sampled_kl(mean, log_std, old_mean, old_log_std, old_noise):
    # log N(u; m, s) = -z^2/2 - log s - log(2 pi)/2 with z = (u - m)/s; the constants cancel.
    # Under the old policy z_old = old_noise exactly. Reads S*B*A noise, writes B.
    u = old_mean + jnp.exp(old_log_std) * old_noise  # [S, B, A]
    z_new = (u - mean) * jnp.exp(-log_std)
    log_ratio = 0.5 * z_new**2 - 0.5 * old_noise**2 + log_std - old_log_std
    return jnp.mean(jnp.sum(log_ratio, axis=-1), axis=0)


def _analytic_kl(mean, log_std, old_mean, old_log_std):
    # old_std^2 / (2 std^2) written as exp(2 (old_log_std - log_std)) / 2: no overflow from exp(2 log_std).
    var_ratio = jnp.exp(2.0 * (old_log_std - log_std))
    z = (old_mean - mean) * jnp.exp(-log_std)
    return jnp.sum(log_std - old_log_std + 0.5 * var_ratio + 0.5 * z**2 - 0.5, axis=-1)
