"""Soft lambda-returns as one Pallas kernel: a reverse loop over T, one program per block of envs.

Same public name, argument order and semantics as `reference_jax.lambda_returns` (docs/algorithms.md
section 4), plus the keyword `interpret` of `_common.py`. The reference is a `lax.scan` of T dependent
steps (on a GPU: T small kernels or one while loop of them); here one launch reads every input once and
writes the returns once.

Layers: `_lambda_returns_kernel` (the loop over the rows of one [T, BLOCK_N] block), `_lambda_returns_2d`
(the pallas_call: grid, block shapes, padding of N) and the public `lambda_returns` (dtypes, flags,
gamma/lmbda, any [T, ...] shape, no gradient).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from ..reference_jax._dtype import compute_dtype
from . import _common
from ._compat import pl

__all__ = ["lambda_returns"]

# Envs per program: one column per thread, at most 4 warps. The loop is latency-bound (T dependent
# steps, each a load, a few flops and a store), so wider programs cost nothing per step; T = 128,
# N = 1024 (the DMC shape) is 8 programs.
_MAX_LANES = 128

# Value dtypes the kernel loads as they are and widens in registers (bf16 reads 2 bytes, not 4).
_LOADABLE = (jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64)


def _lambda_returns_kernel(rewards_ref, next_values_ref, terminated_ref, truncated_ref, params_ref,
                           returns_ref, *, num_steps):
    """One program: returns[t] = r_t + where(term_t, 0, gamma * where(trunc_t, V, lmbda G + (1 - lmbda) V)).

    rewards_ref, next_values_ref [T, BLOCK_N] (bf16/f16/f32/f64), terminated_ref, truncated_ref [T, BLOCK_N]
    bool, params_ref [4] = (gamma, lmbda, 1 - lmbda, 0) in the output dtype, returns_ref [T, BLOCK_N]
    f32/f64 (the accumulation dtype). V = next_values[t], G = G_{t+1}, G_T := V_T. Each step touches
    one row of BLOCK_N contiguous envs, so loads and stores are coalesced; nothing is mutated but the
    output. Memory traffic per program: reads 2 values + 2 one-byte flags per element, writes 1 value.
    """
    acc = returns_ref.dtype
    # (1 - lmbda) arrives precomputed, as the reference forms `1.0 - lmbda` before it meets the data.
    gamma, lmbda, one_minus_lmbda = params_ref[0], params_ref[1], params_ref[2]

    def load_row(t):
        return (rewards_ref[t, :].astype(acc), next_values_ref[t, :].astype(acc), terminated_ref[t, :],
                truncated_ref[t, :])

    def step(i, carry):
        ret, (reward, value, term, trunc) = carry
        t = num_steps - 1 - i
        # Load row t-1 before the dependent arithmetic of row t, so that its latency overlaps this step
        # (the loop carries one row ahead). At t = 0 row 0 is read again and ignored: no masks needed.
        row_ahead = load_row(jnp.maximum(t - 1, 0))
        # The reference's operations in its order. Selects, not (1 - flag) factors: a NaN in a value
        # that is not used (V of a terminal step, G of the next episode) must not leak (NaN * 0 = NaN).
        bootstrap = jnp.where(trunc, value, lmbda * ret + one_minus_lmbda * value)
        ret = reward + jnp.where(term, 0.0, gamma * bootstrap)
        returns_ref[t, :] = ret
        return ret, row_ahead

    last_row = load_row(num_steps - 1)
    # G_T := V_T, so lmbda G_T + (1 - lmbda) V_T is just V_T: the boundary needs no mutated input.
    jax.lax.fori_loop(0, num_steps, step, (last_row[1], last_row))


@functools.partial(jax.jit, static_argnames=("interpret",))
def _lambda_returns_2d(rewards, next_values, terminated, truncated, params, *, interpret: bool):
    """pallas_call over [T, N] inputs; returns [T, N] in params.dtype.

    N is padded to a multiple of BLOCK_N (zeros and False: finite returns in the padded columns, which
    are sliced off); the Triton lowering does not mask partial blocks. T needs no padding: the loop
    runs over exactly T rows and every load is one [BLOCK_N] row.
    """
    num_steps, num_envs = rewards.shape
    block_n = _common.block_size(num_envs, 1, _MAX_LANES)  # 1, 2, 4, ..., _MAX_LANES envs
    padded_envs = _common.round_up(num_envs, block_n)
    rewards, next_values, terminated, truncated = (
        _common.pad_to(x, (num_steps, padded_envs)) for x in (rewards, next_values, terminated, truncated))
    block = pl.BlockSpec((num_steps, block_n), lambda j: (0, j))
    returns = _common.launch(
        functools.partial(_lambda_returns_kernel, num_steps=num_steps),
        rewards, next_values, terminated, truncated, params,
        out_shape=jax.ShapeDtypeStruct((num_steps, padded_envs), params.dtype),
        grid=(padded_envs // block_n,),
        in_specs=[block, block, block, block, pl.BlockSpec((4,), lambda j: (0,))],
        out_specs=block,
        interpret=interpret,
        num_warps=_common.num_warps(block_n, lanes_per_thread=1, min_warps=1))
    return returns[:, :num_envs]


def _as_values(x, dtype):
    x = jnp.asarray(x)
    return x if x.dtype in _LOADABLE else x.astype(dtype)


def _as_flag(x):
    """Bool flags as they are (one byte each); any other dtype: nonzero = set (NaN counts as set)."""
    x = jnp.asarray(x)
    return x if x.dtype == jnp.bool_ else x != 0


def lambda_returns(rewards, next_values, terminated, truncated, *, gamma, lmbda,
                   interpret: bool | None = None) -> jax.Array:
    """Lambda-returns [T, N] of a rollout; every input is [T, N] (any [T, ...] shape works).

    rewards r_t (the soft rewards), next_values V_{t+1} = next_values[t] (the value of the true next
    observation), terminated/truncated bool or any float/int dtype (nonzero = set). With G_T := V_T:

        G_t = r_t + gamma (1 - terminated_t) [ truncated_t V_{t+1}
                                               + (1 - truncated_t) (lmbda G_{t+1} + (1 - lmbda) V_{t+1}) ]

    Terminated wins over truncated; a truncated step bootstraps from its own V_{t+1}. gamma and lmbda
    are Python floats or JAX scalars (traced ones too: no recompilation per value). No gradient; inputs
    are never mutated. Dtype: float32/float64 follow rewards/next_values; anything else is computed and
    returned in float32 (bf16/f16 are widened in the kernel). `interpret`: see `_common.py` (None:
    interpret unless JAX runs on a GPU).
    """
    dtype = compute_dtype(rewards, next_values)
    rewards, next_values = _as_values(rewards, dtype), _as_values(next_values, dtype)
    terminated, truncated = _as_flag(terminated), _as_flag(truncated)
    shape = rewards.shape
    if not shape == next_values.shape == terminated.shape == truncated.shape:
        raise ValueError("rewards, next_values, terminated and truncated must share one [T, N] shape")
    if len(shape) == 0 or shape[0] == 0:
        raise ValueError("lambda_returns needs T >= 1")
    # Rounded once to the output dtype, as the reference's weakly typed Python scalars are; 1 - lmbda is
    # formed before rounding (in float64 for a Python float), like the reference's `1.0 - lmbda`.
    params = jnp.stack([jnp.asarray(x).astype(dtype) for x in (gamma, lmbda, 1.0 - lmbda, 0.0)])
    num_envs = math.prod(shape[1:])
    if num_envs == 0:
        return jnp.zeros(shape, dtype)
    args = [jax.lax.stop_gradient(x.reshape(shape[0], num_envs))
            for x in (rewards, next_values, terminated, truncated)]
    returns = _lambda_returns_2d(*args, jax.lax.stop_gradient(params),
                                 interpret=_common.resolve_interpret(interpret))
    # Returns are targets: like the reference, they never carry a gradient.
    return jax.lax.stop_gradient(returns.reshape(shape))

