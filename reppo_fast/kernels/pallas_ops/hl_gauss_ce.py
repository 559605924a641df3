"""HL-Gauss categorical value loss in Pallas: fused histogram + cross-entropy + gradient, and decode.

Same public names, argument order and semantics as `reference_jax.hl_gauss_ce` (docs/algorithms.md section 5):
`hl_gauss_ce` (loss [...]), `hl_gauss_decode` (q [...]) and `hl_gauss_hist` (p [..., K]), plus the
keyword `interpret` of `_common.py` (None: interpret unless JAX runs on a GPU).

Layers: the kernels (`_hl_gauss_ce_kernel`, `_hl_gauss_decode_kernel`, `_hl_gauss_decode_bwd_kernel`,
`_hl_gauss_hist_kernel`, sharing `_erf`, `_hist_rows` and `_softmax_rows`), `_call` (block sizes,
padding, `pl.pallas_call`), the `jax.custom_vjp` pairs and the public wrappers.

The loss writes its own gradient (Liger style): one pass over the logits builds the target histogram
from the scalar target (erf of the bin edges), the log-softmax, the loss AND d loss/d logits =
softmax - p, saved as the residual, so the backward is one multiply by the upstream cotangent.

Padding (the Triton lowering needs power-of-two blocks): K -> Kp = next power of two (151 -> 256) with
-inf logits, which drop out of the max and give exp = 0; B -> a multiple of the row block with zero
logits and targets v_min (finite, never returned). The pad is one XLA copy of the logits (reads B*K,
writes Bp*Kp); outputs are sliced back.

Accuracy beyond a plain float32 port (each was needed to stay within 2x of the reference's error):
bin edges and centres are float64 constants split into float32 hi + lo, and the softmax sum and
q = sum softmax * centres use an order-independent exact-hi split sum (`_split_sum`).

erf: `jax.lax.erf` runs in interpret mode but has no Pallas Triton lowering (jax 0.10.2:
"Unimplemented primitive in Pallas Triton lowering: erf"), so `_erf` is Cephes' erf/erfc in jnp
(float32: max abs error 1.3e-7 vs 3.2e-7 for XLA's own float32 erf; float64: 3.3e-16).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..reference_jax._dtype import compute_dtype
from ..reference_jax.hl_gauss_ce import _check_support
from . import _common
from ._compat import pl

__all__ = ["hl_gauss_ce", "hl_gauss_decode", "hl_gauss_hist"]

# Rows are packed until a block holds ~_MAX_LANES lanes: 8 rows of 256 at K = 151, 16 values a thread at
# 4 warps.
_MAX_LANES = 2048

# Cephes (ndtr.c) coefficients, highest power first. |x| < 1: erf = x T(x^2) (float32, erff) or
# x T(x^2)/U(x^2) (float64); |x| >= 1: erfc = exp(-x^2) P(|x|)/Q(|x|), erf = sign(x) (1 - erfc).
_ERF_T32 = (7.853861353153693e-5, -8.010193625184903e-4, 5.188327685732524e-3, -2.685381193529856e-2,
            1.128358514861418e-1, -3.761262582423300e-1, 1.128379165726710e0)
_ERF_T = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
          7.00332514112805075473e3, 5.55923013010394962768e4)
_ERF_U = (1.0, 3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
          2.26290000613890934246e4, 4.92673942608635921086e4)
_ERFC_P = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
           4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
           9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)
_ERFC_Q = (1.0, 1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
           9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
           1.65666309194161350182e3, 5.57535340817727675546e2)


class _Support(NamedTuple):
    """Static (hashable) configuration of one call: the nondiff argument of the custom_vjp pairs."""
    num_bins: int
    v_min: float
    v_max: float
    sigma_ratio: float
    interpret: bool


def _horner(coefficients, x):
    out = jnp.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        out = out * x + c
    return out


def _erf(x):
    """erf(x), elementwise, float32 or float64, from jnp ops that the Triton lowering supports.

    The select evaluates both branches, so each is clamped to stay finite for every input: x to
    [-1, 1] in the polynomial one, |x| to 6 in the erfc one (erfc(6) = 2e-17 < ulp(1)/2 in both
    dtypes, so erf = +-1 exactly there).
    """
    small_x = jnp.clip(x, -1.0, 1.0)
    z = small_x * small_x
    if x.dtype == jnp.float64:
        small = small_x * _horner(_ERF_T, z) / _horner(_ERF_U, z)
    else:
        small = small_x * _horner(_ERF_T32, z)
    a = jnp.minimum(jnp.abs(x), 6.0)
    erfc = jnp.exp(-a * a) * _horner(_ERFC_P, a) / _horner(_ERFC_Q, a)
    large = jnp.where(x < 0, erfc - 1.0, 1.0 - erfc)
    return jnp.where(jnp.abs(x) < 1.0, small, large)


def _edges(support: _Support, block_k: int, dtype) -> jax.Array:
    """Bin edges [4, Kp] as (left_hi, left_lo, right_hi, right_lo), built in float64 numpy at trace time.

    edge = hi + lo with hi = dtype(edge) and lo = dtype(edge - hi): the kernel forms (hi - y) + lo,
    where hi - y is exact or nearly (hi, y close) for the bins that carry mass, so an edge sits within
    ~1e-8 of its float64 place (the reference's float32 linspace edges are off by up to ulp(15)/2 =
    5e-7). Padded lanes get left = right, hence mass exactly 0.
    """
    num_bins, v_min, v_max = support.num_bins, support.v_min, support.v_max
    width = (v_max - v_min) / (num_bins - 1)
    index = np.minimum(np.arange(block_k), num_bins - 1).astype(np.float64)
    right = v_min + (index + 0.5) * width
    left = np.where(np.arange(block_k) < num_bins, v_min + (index - 0.5) * width, right)
    rows = []
    for edge in (left, right):
        hi = edge.astype(dtype)
        rows += [hi, (edge - hi.astype(np.float64)).astype(dtype)]
    return jnp.asarray(np.stack(rows))


def _hist_rows(y, edges_ref, inv_scale):
    """Histogram p [BB, Kp] of clipped targets y [BB]; 0 on padded lanes.

    mass_i = erf(a_{i+1}) - erf(a_i) with a = (edge - y) / (sqrt(2) sigma); p_i = mass_i / sum_j mass_j.
    The sum telescopes to e_K - e_0 (the reference's normaliser) and makes rows sum to 1 to rounding.
    Far from y both erfs saturate to the same +-1 and p is exactly 0, as in the reference.
    """
    col = y[:, None]
    left = ((edges_ref[0, :][None, :] - col) + edges_ref[1, :][None, :]) * inv_scale
    right = ((edges_ref[2, :][None, :] - col) + edges_ref[3, :][None, :]) * inv_scale
    mass = _erf(right) - _erf(left)
    return mass / jnp.sum(mass, axis=1)[:, None]


def _split_sum(t, bound: float):
    """Row sums of t [BB, Kp] as (hi, lo) [BB], hi + lo = sum_i t_bi to ~one rounding, given
    sum_i |t_bi| <= bound (static).

    Each term is split into hi = round(t / grid) grid and the exact lo = t - hi, with grid = 2^(e+1)
    eps, 2^e >= bound: every partial sum of the hi parts is a multiple of grid of magnitude <~ bound
    < 2^(mantissa+1) grid = 2^(e+2), hence EXACT in any order (XLA's or Triton's reduction tree); the
    lo parts (|lo| <= grid / 2, <~ K grid in all) lose only ~K eps^2 bound. round() is floor(x + 1/2): unlike
    (t + C) - C, which XLA was seen to fold to t, it cannot be simplified away; scaling by the power
    of two 1/grid is exact. A plain float32 sum was off by ~3 ulp (151 terms), enough to lose to the
    reference by 2x in decode, where q = sum softmax * centres cancels (|centre| ~ 15, q ~ 0).
    """
    grid = 2.0 ** (math.ceil(math.log2(bound)) + 1) * float(jnp.finfo(t.dtype).eps)
    hi = jnp.floor(t * (1.0 / grid) + 0.5) * grid
    return jnp.sum(hi, axis=1), jnp.sum(t - hi, axis=1)


def _softmax_rows(x):
    """(z = x - max, exp(z), sum exp(z)) of logits [BB, Kp]; -inf padded lanes give exp = 0.
    The sum (of terms in [0, 1]) goes through `_split_sum`."""
    z = x - jnp.max(x, axis=1)[:, None]
    e = jnp.exp(z)
    total_hi, total_lo = _split_sum(e, float(x.shape[1]))
    return z, e, total_hi + total_lo


def _hl_gauss_ce_kernel(logits_ref, targets_ref, edges_ref, loss_ref, grad_ref=None, *, inv_scale):
    """loss_b = -sum_i p_bi log_softmax(x_b)_i and (grad_ref given) grad_bi = softmax(x_b)_i - p_bi.

    Blocks: logits [BB, Kp], clipped targets [BB], edges [4, Kp] -> loss [BB], grad [BB, Kp].
    Memory traffic per call: reads Bp*Kp logits + Bp targets; writes Bp losses (+ Bp*Kp gradient).
    For B = 2048, K = 151 (Kp = 256) in float32: 2.1 MB read, 2.1 MB written with the gradient.
    """
    x = logits_ref[...]
    p = _hist_rows(targets_ref[...], edges_ref, inv_scale)
    z, e, total = _softmax_rows(x)
    log_softmax = z - jnp.log(total)[:, None]
    # The selects keep 0 * (-inf) = NaN out where p is exactly 0 (padding, or an -inf logit far from
    # the target: legal); the outer one also maps a NaN p to 0, as the reference's select does.
    has_mass = p > 0
    loss_ref[...] = -jnp.sum(jnp.where(has_mass, p * jnp.where(has_mass, log_softmax, 0.0), 0.0), axis=1)
    if grad_ref is not None:
        # sum_j p_j = 1, so d/dx_i of -sum_j p_j (z_j - log sum exp z) is softmax_i - p_i.
        grad_ref[...] = e / total[:, None] - p


def _row_dot(s, centres_ref, bound: float):
    """(q_hi, q_lo) [BB], q_hi + q_lo = sum_i s_i c_i per row of s [BB, Kp] (sum s = 1), centres
    c = c_hi + c_lo from centres_ref [2, Kp], |c| <= bound: `_split_sum` of s c_hi, plus sum s c_lo."""
    q_hi, q_lo = _split_sum(s * centres_ref[0, :][None, :], bound)
    return q_hi, q_lo + jnp.sum(s * centres_ref[1, :][None, :], axis=1)


def _hl_gauss_decode_kernel(logits_ref, centres_ref, q_ref, *, bound):
    """q_b = sum_i softmax(x_b)_i c_i (see `_row_dot`).

    Blocks: logits [BB, Kp], centres [2, Kp] (hi, lo) -> q [BB]. Reads Bp*Kp, writes Bp.
    """
    _, e, total = _softmax_rows(logits_ref[...])
    q_hi, q_lo = _row_dot(e / total[:, None], centres_ref, bound)
    q_ref[...] = q_hi + q_lo


def _hl_gauss_decode_bwd_kernel(logits_ref, centres_ref, grad_q_ref, grad_ref, *, bound):
    """grad_bi = g_b softmax(x_b)_i (c_i - q_b), softmax and q recomputed from the logits.

    c - q = (c_hi - q_hi) + (c_lo - q_lo): for a one-hot softmax q_hi = c_hi and q_lo = c_lo to
    rounding, so the gradient is 0 as it should be (c_i - round(q) would leave c_lo ~ 5e-7).
    Recomputing costs one exp per element; saving the softmax would cost a write and a read of Bp*Kp.
    Blocks: logits [BB, Kp], centres [2, Kp], upstream g [BB] -> grad [BB, Kp].
    Reads Bp*Kp + Bp, writes Bp*Kp.
    """
    _, e, total = _softmax_rows(logits_ref[...])
    softmax = e / total[:, None]
    q_hi, q_lo = _row_dot(softmax, centres_ref, bound)
    offset = (centres_ref[0, :][None, :] - q_hi[:, None]) + (centres_ref[1, :][None, :] - q_lo[:, None])
    grad_ref[...] = softmax * offset * grad_q_ref[...][:, None]


def _hl_gauss_hist_kernel(targets_ref, edges_ref, probs_ref, *, inv_scale):
    """probs_bi = p_bi of `_hist_rows`. Blocks: targets [BB], edges [4, Kp] -> probs [BB, Kp].
    Reads Bp, writes Bp*Kp."""
    probs_ref[...] = _hist_rows(targets_ref[...], edges_ref, inv_scale)


def _blocks(num_rows: int, num_bins: int):
    """(BB, Kp, Bp, num_warps): Kp = next power of two >= K, BB a power of two <= ~_MAX_LANES / Kp rows
    and no more than B needs, Bp = B rounded up to BB; 16 lanes a thread, at least 4 warps."""
    block_k = _common.next_pow2(num_bins)
    block_b = _common.block_size(num_rows, block_k, _MAX_LANES)
    num_warps = _common.num_warps(block_b * block_k, lanes_per_thread=16, min_warps=4)
    return block_b, block_k, _common.round_up(num_rows, block_b), num_warps


def _pad(x, rows: int, cols: int | None = None, fill=0.0):
    """1-D: pad with `fill` to `rows`. 2-D: pad axis 1 with `fill` to `cols`, then axis 0 with zeros."""
    if x.ndim == 1:
        return _common.pad_to(x, (rows,), fill)
    return _common.pad_to(_common.pad_to(x, (x.shape[0], cols), fill), (rows, cols))


def _call(kernel, num_rows, support: _Support, dtype, ins, outs):
    """Run `kernel` over row blocks of Bp rows. ins: (array, kind) pairs, outs: kinds, a kind being "rows"
    ([Bp], BB per program), "matrix" ([Bp, Kp], BB rows per program) or "const" (whole, every program)."""
    block_b, block_k, padded_rows, num_warps = _blocks(num_rows, support.num_bins)

    def spec(kind, shape):
        if kind == "rows":
            return pl.BlockSpec((block_b,), lambda i: (i,))
        if kind == "matrix":
            return pl.BlockSpec((block_b, block_k), lambda i: (i, 0))
        return pl.BlockSpec(shape, lambda i: (0,) * len(shape))

    out_shapes = [jax.ShapeDtypeStruct((padded_rows,) if kind == "rows" else (padded_rows, block_k), dtype)
                  for kind in outs]
    return _common.launch(
        kernel, *(x for x, _ in ins), out_shape=out_shapes, grid=(padded_rows // block_b,),
        in_specs=[spec(kind, x.shape) for x, kind in ins], out_specs=[spec(kind, None) for kind in outs],
        interpret=support.interpret, num_warps=num_warps)


def _inv_scale(support: _Support) -> float:
    """1 / (sqrt(2) sigma) with sigma = sigma_ratio * bin width."""
    width = (support.v_max - support.v_min) / (support.num_bins - 1)
    return 1.0 / (math.sqrt(2.0) * support.sigma_ratio * width)


def _ce_call(logits, targets, support: _Support, with_grad: bool):
    """(loss [B], padded gradient [Bp, Kp] or None) of logits [B, K] and clipped targets [B]."""
    num_rows, dtype = logits.shape[0], logits.dtype
    _, block_k, padded_rows, _ = _blocks(num_rows, support.num_bins)
    kernel = functools.partial(_hl_gauss_ce_kernel, inv_scale=_inv_scale(support))
    outs = _call(kernel, num_rows, support, dtype,
                 ((_pad(logits, padded_rows, block_k, -jnp.inf), "matrix"),
                  (_pad(targets, padded_rows, fill=support.v_min), "rows"),
                  (_edges(support, block_k, dtype), "const")),
                 ("rows", "matrix") if with_grad else ("rows",))
    return outs[0][:num_rows], (outs[1] if with_grad else None)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _ce(logits, targets, support: _Support):
    return _ce_call(logits, targets, support, with_grad=False)[0]


def _ce_fwd(logits, targets, support):
    loss, grad = _ce_call(logits, targets, support, with_grad=True)
    return loss, (grad, jnp.zeros_like(targets))


def _ce_bwd(support, residual, grad_loss):
    # The one multiply; the slice of the padded residual fuses into it (reads B*K + B, writes B*K).
    grad, zero_targets = residual
    return grad_loss[:, None] * grad[:grad_loss.shape[0], :support.num_bins], zero_targets


_ce.defvjp(_ce_fwd, _ce_bwd)


def _centres(support: _Support, block_k: int, dtype):
    """Centres linspace(v_min, v_max, K) [2, Kp] in float64 numpy as hi + lo in dtype (padded lanes 0:
    their softmax is 0): (hi - q) + lo keeps c - q exact for a one-hot softmax."""
    centres = np.zeros(block_k)
    centres[:support.num_bins] = np.linspace(support.v_min, support.v_max, support.num_bins)
    hi = centres.astype(dtype)
    return jnp.asarray(np.stack([hi, (centres - hi.astype(np.float64)).astype(dtype)]))


def _decode_call(kernel, logits, support: _Support, rows_in=()):
    """Run a decode kernel on logits [B, K] (+ optional [B] inputs); returns its padded output."""
    num_rows = logits.shape[0]
    _, block_k, padded_rows, _ = _blocks(num_rows, support.num_bins)
    centres = _centres(support, block_k, logits.dtype)
    bound = max(abs(support.v_min), abs(support.v_max), 1e-30)  # >= max |centre|
    ins = ((_pad(logits, padded_rows, block_k, -jnp.inf), "matrix"), (centres, "const"),
           *((_pad(x, padded_rows), "rows") for x in rows_in))
    kind = "matrix" if rows_in else "rows"
    return _call(functools.partial(kernel, bound=bound), num_rows, support, logits.dtype, ins, (kind,))[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _decode(logits, support: _Support):
    return _decode_call(_hl_gauss_decode_kernel, logits, support)[:logits.shape[0]]


def _decode_fwd(logits, support):
    return _decode(logits, support), logits


def _decode_bwd(support, logits, grad_q):
    grad = _decode_call(_hl_gauss_decode_bwd_kernel, logits, support, rows_in=(grad_q,))
    return (grad[:logits.shape[0], :support.num_bins],)


_decode.defvjp(_decode_fwd, _decode_bwd)


def _support(num_bins, v_min, v_max, sigma_ratio, interpret, check=True) -> _Support:
    if check:  # the reference's decode checks nothing
        _check_support(num_bins, v_min, v_max, sigma_ratio)
    return _Support(int(num_bins), float(v_min), float(v_max), float(sigma_ratio),
                    _common.resolve_interpret(interpret))


def _clipped(targets, dtype, support: _Support):
    """The reference's target preprocessing: cast, no gradient, clip (a NaN target stays NaN)."""
    y = jax.lax.stop_gradient(jnp.asarray(targets).astype(dtype))
    return jnp.clip(y, support.v_min, support.v_max)


def hl_gauss_hist(targets, *, num_bins, v_min, v_max, sigma_ratio=0.75,
                  interpret: bool | None = None) -> jax.Array:
    """Target histogram p [..., K] of scalar targets [...] (K = num_bins); rows sum to 1. No gradient.

    With y = clip(target, v_min, v_max), edges at the centres linspace(v_min, v_max, K) -+ w/2 and
    sigma = sigma_ratio * w:
        p_i = (e_{i+1} - e_i) / (e_K - e_0),    e_j = erf((edge_j - y) / (sqrt(2) sigma)).
    Computed by the Pallas histogram kernel (the same `_hist_rows` code as the loss).
    Dtype: float32/float64 follow the targets; anything else is computed and returned in float32.
    """
    support = _support(num_bins, v_min, v_max, sigma_ratio, interpret)
    dtype = compute_dtype(targets)
    y = _clipped(targets, dtype, support)
    flat = y.reshape(-1)
    if flat.shape[0] == 0:
        return jnp.zeros((*y.shape, num_bins), dtype)
    _, block_k, padded_rows, _ = _blocks(flat.shape[0], num_bins)
    kernel = functools.partial(_hl_gauss_hist_kernel, inv_scale=_inv_scale(support))
    (probs,) = _call(kernel, flat.shape[0], support, dtype,
                     ((_pad(flat, padded_rows, fill=v_min), "rows"),
                      (_edges(support, block_k, dtype), "const")),
                     ("matrix",))
    return probs[:flat.shape[0], :num_bins].reshape(*y.shape, num_bins)


def hl_gauss_ce(logits, targets, *, v_min, v_max, sigma_ratio=0.75,
                interpret: bool | None = None) -> jax.Array:
    """Unreduced HL-Gauss cross-entropy loss [...] of logits [..., K] against scalar targets [...].

        loss = -sum_i p_i * log_softmax(logits)_i,    p = hl_gauss_hist(targets)   (K = logits.shape[-1])
        d loss / d logits = upstream * (softmax(logits) - p)      (sum p = 1); targets get no gradient.

    Dtype: float32/float64 follow the logits (targets are cast to it); bf16/f16 logits are computed
    and returned in float32 (their gradient is cast back to the logits' dtype).
    """
    dtype = compute_dtype(logits)
    logits = jnp.asarray(logits).astype(dtype)
    support = _support(logits.shape[-1], v_min, v_max, sigma_ratio, interpret)
    y = _clipped(targets, dtype, support)
    if y.shape != logits.shape[:-1]:
        raise ValueError(f"targets {y.shape} must match the logits' leading dims {logits.shape[:-1]}")
    if y.size == 0:
        return jnp.sum(logits, axis=-1)
    return _ce(logits.reshape(-1, support.num_bins), y.reshape(-1), support).reshape(y.shape)


def hl_gauss_decode(logits, *, v_min, v_max, interpret: bool | None = None) -> jax.Array:
    """Expected value q [...] = sum_i softmax(logits)_i * centre_i of logits [..., K].

    Centres linspace(v_min, v_max, K). d q / d logits_i = softmax_i (centre_i - q) (the backward kernel
    recomputes the softmax). Dtype rule as in hl_gauss_ce.
    """
    dtype = compute_dtype(logits)
    logits = jnp.asarray(logits).astype(dtype)
    support = _support(logits.shape[-1], v_min, v_max, 0.75, interpret, check=False)
    if logits.size == 0:
        return jnp.sum(logits, axis=-1)
    return _decode(logits.reshape(-1, support.num_bins), support).reshape(logits.shape[:-1])
