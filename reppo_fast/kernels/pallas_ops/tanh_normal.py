"""Fused Pallas tanh-Gaussian: sample, log-prob and KL to a frozen old policy (docs/algorithms.md sections 2,
6).

Drop-in for `reppo_fast.kernels.reference_jax.tanh_normal` (same name, arguments, `TanhNormalOut` and
dtype rule); that pure-jnp reference is what the kernels are tested against. One forward kernel
computes action, log_prob and kl per block of rows; one backward kernel recomputes u, tanh(u) and
the S samples' z from the inputs (no S*B*A intermediates are saved) and writes d/dmean and
d/dlog_std. `jax.custom_vjp` pairs the two.

Layout: A is padded to a power of two (the Triton lowering needs power-of-two block shapes) and
masked, so padded lanes add nothing to the row sums; B is padded to a multiple of the row block.
Padding is zeros (finite everywhere: u = 0, s = 1), and the padded rows/lanes are sliced off.
`interpret` is the keyword of `_common.py`: None interprets unless JAX runs on a GPU.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..reference_jax._dtype import compute_dtype
from ..reference_jax.tanh_normal import TanhNormalOut
from . import _common
from ._compat import pl

__all__ = ["TanhNormalOut", "tanh_normal"]

# Elements per program: (2048, 21) -> 128 programs of 16 x 32, about one per H100 SM; 4 warps, so 4
# elements a thread.
_MAX_LANES = 512
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


class _Config(NamedTuple):
    """Static (hashable) launch configuration of the kernels."""

    num_actions: int  # the true A; lanes >= num_actions are padding
    block_b: int  # rows per program (a power of two)
    interpret: bool


# --------------------------------------------------------------------------- shared elementwise maths


def _log_one_minus_tanh_sq(u):
    """log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), finite for every u (never uses atanh).

    softplus(x) = max(x, 0) + log1p(exp(-|x|)): exp never overflows, as jax.nn.softplus.
    """
    x = -2.0 * u
    softplus = jnp.maximum(x, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(x)))
    return 2.0 * (_LOG_2 - u - softplus)


def _sample_loop(old_noise_ref, old_mean, old_std, mean, inv_std, update, init):
    """Fold `update(carry, z_j, eps_j)` over the S old samples of this block of rows.

    u_j = old_mean + old_std eps_j ~ pi_old (pre-tanh), z_j = (u_j - mean) / std. One [BB, BA] slice
    of old_noise is read per step, so registers hold O(BB*BA) whatever S is.
    """
    def body(j, carry):
        eps = old_noise_ref[j]
        return update(carry, (old_mean + old_std * eps - mean) * inv_std, eps)

    return jax.lax.fori_loop(0, old_noise_ref.shape[0], body, init)


def _kahan_add(total, compensation, x):
    """Compensated total += x (Kahan). A plain sum of S terms z^2 (up to ~1e3 when the policies are
    far apart) rounds S times; the three extra flops are free in a memory-bound loop."""
    y = x - compensation
    new_total = total + y
    return new_total, (new_total - total) - y


def _lane_mask(shape, num_actions):
    return jax.lax.broadcasted_iota(jnp.int32, shape, 1) < num_actions


# --------------------------------------------------------------------------- kernels


def _tanh_normal_kernel(mean_ref, log_std_ref, noise_ref, *refs, num_actions, kl_mode):
    """Forward on one block of rows.

    Refs: mean_ref, log_std_ref, noise_ref [BB, BA]; then old_mean_ref, old_log_std_ref [BB, BA]
    (kl_mode "analytic"/"sampled"), old_noise_ref [S, BB, BA] ("sampled"); outputs action_ref
    [BB, BA], log_prob_ref [BB], kl_ref [BB] (absent for kl_mode "none").
    Bytes per row: reads 3A (+2A old policy, +S*A old_noise), writes A + 1 (+1 kl).
    """
    num_old = {"none": 0, "analytic": 2, "sampled": 3}[kl_mode]
    old_refs, (action_ref, log_prob_ref, *kl_ref) = refs[:num_old], refs[num_old:]
    mean, log_std, noise = mean_ref[...], log_std_ref[...], noise_ref[...]
    mask = _lane_mask(mean.shape, num_actions)  # padded lanes add nothing to the row sums

    u = mean + jnp.exp(log_std) * noise
    action_ref[...] = jnp.tanh(u)
    # (u - mean) / std == noise exactly: the Gaussian term uses noise (the pathwise log-density).
    lp = -0.5 * noise * noise - log_std - _HALF_LOG_2PI - _log_one_minus_tanh_sq(u)
    log_prob_ref[...] = jnp.sum(jnp.where(mask, lp, 0.0), axis=1)
    if kl_mode == "none":
        return

    old_mean, old_log_std = old_refs[0][...], old_refs[1][...]
    inv_std = jnp.exp(-log_std)
    if kl_mode == "analytic":
        # Per dim: log s - log s0 + (s0^2 + (m0 - m)^2) / (2 s^2) - 1/2, with s0^2 / s^2 written as
        # exp(2 (log s0 - log s)) so exp(2 log s) never overflows.
        z = (old_mean - mean) * inv_std
        kl = log_std - old_log_std + 0.5 * jnp.exp(2.0 * (old_log_std - log_std)) + 0.5 * z * z - 0.5
    else:
        # Sampled in pre-tanh space (the tanh Jacobian cancels between the two log-densities):
        # log N(u_j; old) - log N(u_j; new) = z_j^2/2 - eps_j^2/2 + log s - log s0.
        zeros = jnp.zeros_like(mean)
        total, _ = _sample_loop(old_refs[2], old_mean, jnp.exp(old_log_std), mean, inv_std,
                                lambda acc, z, eps: _kahan_add(*acc, 0.5 * z * z - 0.5 * eps * eps),
                                (zeros, zeros))
        kl = total / old_refs[2].shape[0] + log_std - old_log_std
    kl_ref[0][...] = jnp.sum(jnp.where(mask, kl, 0.0), axis=1)


def _tanh_normal_bwd_kernel(mean_ref, log_std_ref, noise_ref, *refs, kl_mode):
    """Backward on one block of rows: d/dmean and d/dlog_std of <g, (action, log_prob, kl)>.

    Refs: mean_ref, log_std_ref, noise_ref [BB, BA]; old_mean_ref, old_log_std_ref [BB, BA] and
    old_noise_ref [S, BB, BA] as in the forward; g_action_ref [BB, BA], g_log_prob_ref [BB],
    g_kl_ref [BB] (absent for "none"); outputs grad_mean_ref, grad_log_std_ref [BB, BA].
    Bytes per row: reads 4A + 1 (+2A + 1 old policy and g_kl, +S*A old_noise), writes 2A.

    Maths, with s = exp(log_std), u = mean + s noise, t = tanh(u), du/dmean = 1, du/dlog_std = s noise:
      d action/du   = 1 - t^2 = 4e / (1 + e)^2, e = exp(-2|u|)   (no cancellation when |t| -> 1)
      d log_prob/du = -d/du 2 (log 2 - u - softplus(-2u)) = 2 - 4 sigmoid(-2u) = 2t
      d log_prob/dlog_std has the direct term -1 per component (noise is a constant sample).
      sampled kl, z_j = (u_j - mean)/s, dz_j/dmean = -1/s, dz_j/dlog_std = -z_j, averaged over S:
        d/dmean = -mean_j(z_j) / s,  d/dlog_std = 1 - mean_j(z_j^2)
      analytic kl: d/dmean = (mean - old_mean)/s^2, d/dlog_std = 1 - (s0^2 + (old_mean - mean)^2)/s^2.
    Nothing flows to noise or the old policy (samples and a frozen policy, as in the reference).
    """
    num_old = {"none": 0, "analytic": 2, "sampled": 3}[kl_mode]
    old_refs, refs = refs[:num_old], refs[num_old:]
    g_action_ref, g_log_prob_ref, *g_kl_ref = refs[:-2]
    grad_mean_ref, grad_log_std_ref = refs[-2:]
    mean, log_std, noise = mean_ref[...], log_std_ref[...], noise_ref[...]
    std = jnp.exp(log_std)
    u = mean + std * noise
    e = jnp.exp(-2.0 * jnp.abs(u))
    g_log_prob = g_log_prob_ref[...][:, None]
    g_u = g_action_ref[...] * (4.0 * e / ((1.0 + e) * (1.0 + e))) + g_log_prob * (2.0 * jnp.tanh(u))
    grad_mean = g_u
    grad_log_std = g_u * std * noise - g_log_prob

    if kl_mode != "none":
        g_kl = g_kl_ref[0][...][:, None]
        old_mean, old_log_std = old_refs[0][...], old_refs[1][...]
        inv_std = jnp.exp(-log_std)
        if kl_mode == "analytic":
            z = (old_mean - mean) * inv_std
            d_mean = -z * inv_std
            d_log_std = 1.0 - jnp.exp(2.0 * (old_log_std - log_std)) - z * z
        else:
            zeros = jnp.zeros_like(mean)
            (sum_z, _), (sum_z2, _) = _sample_loop(
                old_refs[2], old_mean, jnp.exp(old_log_std), mean, inv_std,
                lambda acc, z, eps: (_kahan_add(*acc[0], z), _kahan_add(*acc[1], z * z)),
                ((zeros, zeros), (zeros, zeros)))
            num_samples = old_refs[2].shape[0]
            d_mean = -(sum_z / num_samples) * inv_std
            d_log_std = 1.0 - sum_z2 / num_samples
        grad_mean = grad_mean + g_kl * d_mean
        grad_log_std = grad_log_std + g_kl * d_log_std
    grad_mean_ref[...] = grad_mean
    grad_log_std_ref[...] = grad_log_std


# --------------------------------------------------------------------------- launchers


def _kl_mode(old) -> str:
    return ("none", None, "analytic", "sampled")[len(old)]


def _specs(cfg: _Config, mean, old):
    """BlockSpecs: a [BB, BA] row block, a [BB] row block, and the list of the old-policy blocks."""
    block_a = mean.shape[1]  # already padded to a power of two
    row2 = pl.BlockSpec((cfg.block_b, block_a), lambda i: (i, 0))
    row1 = pl.BlockSpec((cfg.block_b,), lambda i: (i,))
    old_specs = [row2] * min(len(old), 2)
    if len(old) == 3:  # the whole S axis in one block: the kernel loops over it
        old_specs.append(pl.BlockSpec((old[2].shape[0], cfg.block_b, block_a), lambda i: (0, i, 0)))
    return row2, row1, old_specs


def _forward(cfg: _Config, mean, log_std, noise, old):
    """Padded [Bp, Ap] inputs -> (action [Bp, Ap], log_prob [Bp], kl [Bp] or None)."""
    (bp, ap), dtype, kl_mode = mean.shape, mean.dtype, _kl_mode(old)
    row2, row1, old_specs = _specs(cfg, mean, old)
    num_1d = 1 if kl_mode == "none" else 2  # log_prob (, kl)
    outs = _common.launch(
        functools.partial(_tanh_normal_kernel, num_actions=cfg.num_actions, kl_mode=kl_mode),
        mean, log_std, noise, *old,
        out_shape=[jax.ShapeDtypeStruct((bp, ap), dtype)] + [jax.ShapeDtypeStruct((bp,), dtype)] * num_1d,
        grid=(bp // cfg.block_b,), in_specs=[row2] * 3 + old_specs, out_specs=[row2] + [row1] * num_1d,
        interpret=cfg.interpret, num_warps=4)
    return outs[0], outs[1], (outs[2] if kl_mode != "none" else None)


def _backward(cfg: _Config, mean, log_std, noise, old, g_action, g_log_prob, g_kl):
    """Padded inputs and cotangents -> (grad_mean, grad_log_std) [Bp, Ap]."""
    (bp, ap), dtype, kl_mode = mean.shape, mean.dtype, _kl_mode(old)
    row2, row1, old_specs = _specs(cfg, mean, old)
    g_1d = (g_log_prob,) if kl_mode == "none" else (g_log_prob, g_kl)
    return _common.launch(
        functools.partial(_tanh_normal_bwd_kernel, kl_mode=kl_mode),
        mean, log_std, noise, *old, g_action, *g_1d,
        out_shape=[jax.ShapeDtypeStruct((bp, ap), dtype)] * 2, grid=(bp // cfg.block_b,),
        in_specs=[row2] * 3 + old_specs + [row2] + [row1] * len(g_1d), out_specs=[row2] * 2,
        interpret=cfg.interpret, num_warps=4)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused(cfg, mean, log_std, noise, old):
    return _forward(cfg, mean, log_std, noise, old)


def _fused_fwd(cfg, mean, log_std, noise, old):
    # Residuals are the inputs only: the backward recomputes u, tanh(u) and the z_j in registers.
    return _forward(cfg, mean, log_std, noise, old), (mean, log_std, noise, old)


def _fused_bwd(cfg, residuals, cotangents):
    mean, log_std, noise, old = residuals
    g_action, g_log_prob, g_kl = cotangents  # custom_vjp instantiates zeros for unused outputs
    grad_mean, grad_log_std = _backward(cfg, mean, log_std, noise, old, g_action, g_log_prob, g_kl)
    # noise and the old policy are constants of the op: zero cotangents (the reference stop-gradients them).
    return grad_mean, grad_log_std, jnp.zeros_like(noise), tuple(jnp.zeros_like(x) for x in old)


_fused.defvjp(_fused_fwd, _fused_bwd)


# --------------------------------------------------------------------------- public API


def tanh_normal(mean, log_std, noise, old_mean=None, old_log_std=None, old_noise=None, *,
                interpret: bool | None = None) -> TanhNormalOut:
    """Reparameterised tanh-Gaussian sample, its log-prob and the forward KL from the old policy.

    Shapes: mean, log_std, noise, old_mean, old_log_std [B, A] (any leading dims; broadcastable as in
    the reference); old_noise [S, B, A]. Dtypes: float32 (and bf16/f16, computed in float32) give
    float32 outputs; float64 inputs give float64. Gradients reach mean and log_std only.

        u        = mean + exp(log_std) * noise,   action = tanh(u)                             [B, A]
        log_prob = sum_A [ -noise^2/2 - log_std - log(2 pi)/2 - 2 (log 2 - u - softplus(-2u)) ]     [B]
        kl       = mean_j sum_A [ log N(u_j; old) - log N(u_j; new) ], u_j = old_mean + old_std eps_j
                   (old_noise given), else the exact Gaussian KL(pi_old || pi); None without old_mean.
    `interpret`: see `_common.py` (None: interpret unless JAX runs on a GPU).
    """
    if (old_mean is None) != (old_log_std is None):
        raise ValueError("old_mean and old_log_std must be given together")
    if old_noise is not None and old_mean is None:
        raise ValueError("old_noise needs old_mean and old_log_std")
    dtype = compute_dtype(mean, log_std, noise, old_mean, old_log_std, old_noise)
    mean, log_std, noise = (jnp.asarray(x).astype(dtype) for x in (mean, log_std, noise))
    if old_noise is not None and jnp.shape(old_noise)[1:] != mean.shape:
        raise ValueError(f"old_noise must be [S, *{mean.shape}], got {jnp.shape(old_noise)}")
    old = tuple(jnp.asarray(x).astype(dtype) for x in (old_mean, old_log_std, old_noise) if x is not None)
    # The reference broadcasts (e.g. a state-independent log_std [A]); the kernels see full [B, A].
    shape = jnp.broadcast_shapes(mean.shape, log_std.shape, noise.shape, *(x.shape for x in old[:2]))
    lead, num_actions = shape[:-1], shape[-1]
    num_rows = math.prod(lead)
    block_a = _common.next_pow2(num_actions)  # A = 0: one masked lane, the sums of nothing are 0
    block_b = _common.block_size(num_rows, block_a, _MAX_LANES)
    padded_rows = _common.round_up(max(num_rows, 1), block_b)

    def flat_padded(x, batch=()):
        x = jnp.broadcast_to(x, (*batch, *shape)).reshape(*batch, num_rows, num_actions)
        return _common.pad_to(x, (*batch, padded_rows, block_a))  # zeros: finite in every formula

    padded_old = tuple(flat_padded(x) for x in old[:2]) + tuple(flat_padded(x, x.shape[:1]) for x in old[2:])
    cfg = _Config(num_actions=num_actions, block_b=block_b, interpret=_common.resolve_interpret(interpret))
    action, log_prob, kl = _fused(cfg, *(flat_padded(x) for x in (mean, log_std, noise)), padded_old)
    action = action[:num_rows, :num_actions].reshape(shape)
    log_prob = log_prob[:num_rows].reshape(lead)
    return TanhNormalOut(action, log_prob, None if kl is None else kl[:num_rows].reshape(lead))


