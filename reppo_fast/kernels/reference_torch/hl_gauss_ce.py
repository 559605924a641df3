"""HL-Gauss categorical value loss: target histogram, cross-entropy and decoding (docs/algorithms.md section
5)."""

import math

import torch

from ._dtype import compute_dtype


def _check_support(num_bins: int, v_min: float, v_max: float, sigma_ratio: float) -> None:
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    if not v_max > v_min:
        raise ValueError(f"need v_min < v_max, got v_min={v_min}, v_max={v_max}")
    if not sigma_ratio > 0:
        raise ValueError(f"sigma_ratio must be > 0, got {sigma_ratio}")


def hl_gauss_hist(targets, *, num_bins, v_min, v_max, sigma_ratio=0.75) -> torch.Tensor:
    """Target histogram p [B, K] of scalar targets [B] (K = num_bins); rows sum to 1.

    Bin centres linspace(v_min, v_max, K), width w = (v_max - v_min)/(K - 1), K+1 edges at the
    centres -+ w/2, sigma = sigma_ratio * w. With y = clip(target, v_min, v_max):
        e_j = erf((edge_j - y) / (sqrt(2) sigma)),   p_i = (e_{i+1} - e_i) / (e_K - e_0)
    i.e. the mass of N(y, sigma^2) in bin i, renormalised to [edge_0, edge_K]. No gradient.
    Dtype: float32/float64 follow the targets; anything else is computed and returned in float32.
    """
    _check_support(num_bins, v_min, v_max, sigma_ratio)
    dtype = compute_dtype(targets)
    y = torch.clamp(targets.detach().to(dtype), v_min, v_max)
    width = (v_max - v_min) / (num_bins - 1)
    edges = torch.linspace(v_min - 0.5 * width, v_max + 0.5 * width, num_bins + 1, dtype=dtype,
                           device=y.device)
    cdf = torch.erf((edges - y[..., None]) / (math.sqrt(2.0) * sigma_ratio * width))
    return (cdf[..., 1:] - cdf[..., :-1]) / (cdf[..., -1:] - cdf[..., :1])


def hl_gauss_ce(logits, targets, *, v_min, v_max, sigma_ratio=0.75) -> torch.Tensor:
    """Unreduced HL-Gauss cross-entropy loss [B] of logits [B, K] against scalar targets [B].

        loss = -sum_i p_i * log_softmax(logits)_i,    p = hl_gauss_hist(targets)   (K = logits.shape[-1])
        d loss / d logits = upstream * (softmax(logits) - p)      (sum p = 1); targets get no gradient.

    Dtype: float32/float64 follow the logits (targets are cast to it); bf16/f16 logits are computed
    and returned in float32.
    """
    dtype = compute_dtype(logits)
    logits = logits.to(dtype)
    probs = hl_gauss_hist(targets.to(dtype), num_bins=logits.shape[-1], v_min=v_min, v_max=v_max,
                          sigma_ratio=sigma_ratio)
    log_softmax = torch.log_softmax(logits, dim=-1)
    # Far from y the erf differences are exactly 0; the select keeps 0 * (-inf logit) = NaN out.
    return -torch.sum(torch.where(probs > 0, probs * log_softmax, 0.0), dim=-1)


def hl_gauss_decode(logits, *, v_min, v_max) -> torch.Tensor:
    """Expected value q [B] = sum_i softmax(logits)_i * centre_i of logits [B, K].

    Centres linspace(v_min, v_max, K). Dtype rule as in hl_gauss_ce.
    """
    dtype = compute_dtype(logits)
    logits = logits.to(dtype)
    centres = torch.linspace(v_min, v_max, logits.shape[-1], dtype=dtype, device=logits.device)
    return torch.sum(torch.softmax(logits, dim=-1) * centres, dim=-1)
