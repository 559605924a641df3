"""Running observation normalisation (spec section 1), part of the train state and the checkpoint."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

NORM_EPS = 1e-2  # (x - mean) / sqrt(var + 1e-2), as the reference


class NormState(NamedTuple):
    mean: jnp.ndarray   # [O] float32
    var: jnp.ndarray    # [O] float32, population variance of everything seen
    count: jnp.ndarray  # [] float32, observations seen (float: int32 overflows past 2^31 steps)


def norm_init(obs_size: int) -> NormState:
    return NormState(jnp.zeros((obs_size,), jnp.float32), jnp.ones((obs_size,), jnp.float32),
                     jnp.zeros((), jnp.float32))


def norm_update(state: NormState, obs) -> NormState:
    """Chan et al.'s parallel update with a batch obs [N, O]:
    delta = mean_b - mean_a; n = n_a + n_b; mean = mean_a + delta * n_b / n;
    M2 = var_a * n_a + var_b * n_b + delta^2 * n_a * n_b / n; var = M2 / n."""
    n_b = jnp.asarray(obs.shape[0], jnp.float32)
    mean_b = jnp.mean(obs, axis=0)
    var_b = jnp.var(obs, axis=0)
    n = state.count + n_b
    delta = mean_b - state.mean
    mean = state.mean + delta * n_b / n
    m2 = state.var * state.count + var_b * n_b + jnp.square(delta) * state.count * n_b / n
    return NormState(mean, m2 / n, n)


def normalize(state: NormState, obs, enabled: bool = True):
    if not enabled:
        return obs
    return (obs - state.mean) / jnp.sqrt(state.var + NORM_EPS)
