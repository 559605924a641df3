"""Running observation normalisation (spec section 1), the torch twin of on_jax.normalizer."""

from __future__ import annotations

from typing import NamedTuple

import torch

NORM_EPS = 1e-2  # (x - mean) / sqrt(var + 1e-2), as the reference


class NormState(NamedTuple):
    mean: torch.Tensor   # [O] float32
    var: torch.Tensor    # [O] float32, population variance of everything seen
    count: torch.Tensor  # [] float32, observations seen


def norm_init(obs_size: int, device=None) -> NormState:
    return NormState(torch.zeros(obs_size, device=device), torch.ones(obs_size, device=device),
                     torch.zeros((), device=device))


def norm_update(state: NormState, obs: torch.Tensor) -> NormState:
    """Chan et al.'s parallel update with a batch obs [N, O] (see on_jax.normalizer.norm_update)."""
    n_b = float(obs.shape[0])
    mean_b = obs.mean(dim=0)
    var_b = obs.var(dim=0, unbiased=False)
    n = state.count + n_b
    delta = mean_b - state.mean
    mean = state.mean + delta * n_b / n
    m2 = state.var * state.count + var_b * n_b + delta.square() * state.count * n_b / n
    return NormState(mean, m2 / n, n)


def normalize(state: NormState, obs: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    if not enabled:
        return obs
    return (obs - state.mean) / torch.sqrt(state.var + NORM_EPS)
