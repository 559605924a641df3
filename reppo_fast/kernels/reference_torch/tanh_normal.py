"""Tanh-squashed diagonal Gaussian: sample, log-prob and KL to a frozen old policy (docs/algorithms.md
sections 2, 6)."""

import math
from typing import NamedTuple

import torch

from ._dtype import compute_dtype

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


class TanhNormalOut(NamedTuple):
    action: torch.Tensor  # [B, A] tanh(u), not clipped
    log_prob: torch.Tensor  # [B] log pi(action | s)
    kl: torch.Tensor | None  # [B] KL(pi_old || pi), None when no old policy was given


def _softplus(x: torch.Tensor) -> torch.Tensor:
    # log(1 + e^x) via logaddexp (as jax.nn.softplus): F.softplus switches to x above x = 20, which
    # is off by ~2e-9 and would make the float64 reference disagree with its oracle.
    return torch.logaddexp(x, torch.zeros_like(x))


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
    so those inputs are detached inside the op.
    """
    if (old_mean is None) != (old_log_std is None):
        raise ValueError("old_mean and old_log_std must be given together")
    if old_noise is not None and old_mean is None:
        raise ValueError("old_noise needs old_mean and old_log_std")
    dtype = compute_dtype(mean, log_std, noise, old_mean, old_log_std, old_noise)
    mean = mean.to(dtype)
    log_std = log_std.to(dtype)
    noise = noise.detach().to(dtype)

    u = mean + torch.exp(log_std) * noise
    log_one_minus_tanh_sq = 2.0 * (_LOG_2 - u - _softplus(-2.0 * u))
    # (u - mean) / std == noise: using noise directly is exact and is the pathwise log-density.
    log_prob = torch.sum(-0.5 * noise**2 - log_std - _HALF_LOG_2PI - log_one_minus_tanh_sq, dim=-1)

    kl = None
    if old_mean is not None:
        old_mean = old_mean.detach().to(dtype)
        old_log_std = old_log_std.detach().to(dtype)
        if old_noise is None:
            kl = _analytic_kl(mean, log_std, old_mean, old_log_std)
        else:
            old_noise = old_noise.detach().to(dtype)
            if old_noise.shape[1:] != mean.shape:
                raise ValueError(f"old_noise must be [S, *{tuple(mean.shape)}], got {tuple(old_noise.shape)}")
            kl = _sampled_kl(mean, log_std, old_mean, old_log_std, old_noise)
    return TanhNormalOut(torch.tanh(u), log_prob, kl)


def _sampled_kl(mean, log_std, old_mean, old_log_std, old_noise):
    # log N(u; m, s) = -z^2/2 - log s - log(2 pi)/2 with z = (u - m)/s; the constants cancel.
    # Under the old policy z_old = old_noise exactly. Reads S*B*A noise, writes B.
    u = old_mean + torch.exp(old_log_std) * old_noise  # [S, B, A]
    z_new = (u - mean) * torch.exp(-log_std)
    log_ratio = 0.5 * z_new**2 - 0.5 * old_noise**2 + log_std - old_log_std
    return torch.mean(torch.sum(log_ratio, dim=-1), dim=0)


def _analytic_kl(mean, log_std, old_mean, old_log_std):
    # old_std^2 / (2 std^2) written as exp(2 (old_log_std - log_std)) / 2: no overflow from exp(2 log_std).
    var_ratio = torch.exp(2.0 * (old_log_std - log_std))
    z = (old_mean - mean) * torch.exp(-log_std)
    return torch.sum(log_std - old_log_std + 0.5 * var_ratio + 0.5 * z**2 - 0.5, dim=-1)
