"""HL-Gauss categorical value loss in Triton: fused histogram + cross-entropy + gradient, and decode.

Same public names, signatures and semantics as `reference_torch.hl_gauss_ce` (docs/algorithms.md section 5):
`hl_gauss_ce` (loss [B]), `hl_gauss_decode` (q [B]) and `hl_gauss_hist` (p [B, K]).

Layers (house style): the `@triton.jit` kernels (`_hl_gauss_ce_fwd_kernel`, `_hl_gauss_decode_fwd_kernel`,
`_hl_gauss_decode_bwd_kernel`, `_hl_gauss_hist_fwd_kernel`, sharing the `_hist_block` and `_softmax_block`
helpers), the host launchers (`_launch_*`: grid, BLOCK_B/BLOCK_K, num_warps), the custom ops
`reppo_fast::hl_gauss_*` (fake + autograd registrations) and the public wrappers.

The loss writes its own gradient (Liger style): one pass over the logits builds the target histogram
from the scalar target (erf of the K+1 bin edges), the log-softmax, the loss AND d loss/d logits =
softmax - p, so the backward is one multiply by the upstream gradient. The reference reads and writes
[B, K] tensors ~10 times (linspace, erf, diff, divide, log_softmax, where, sum, autograd).
"""

import math

import torch
import triton
import triton.language as tl

from ..reference_torch._dtype import compute_dtype
from ..reference_torch.hl_gauss_ce import _check_support
from . import _common
from ._common import round_for_store

__all__ = ["hl_gauss_ce", "hl_gauss_decode", "hl_gauss_hist"]

INV_SQRT2 = tl.constexpr(1.0 / math.sqrt(2.0))  # a constexpr: jit code may read no other globals
MAX_BINS = 16384  # a row lives in registers (BLOCK_K lanes); K = 151 in practice
# Rows are packed until a block holds ~_MAX_LANES lanes: 8 rows of 256 at K = 151, 16 values a thread at
# 4 warps.
_MAX_LANES = 2048


@triton.jit
def _hist_block(targets_ptr, rows, row_mask, cols, num_bins, targets_stride_b, v_min, v_max, sigma_ratio,
                ACC: tl.constexpr):
    """Unmasked target histogram p [BLOCK_B, BLOCK_K] (lanes >= K hold garbage) in dtype ACC.

    Bin units: with u = (clip(y) - v_min) / w, edge_j - y = w (j - 1/2 - u) and sigma = sigma_ratio w, so
    e_j = erf((j - 1/2 - u) / (sqrt(2) sigma_ratio)). u is formed per row in fp64 and split into an integer
    n and a fraction f in [0, 1); j - n is exact, so an edge near the target sits within ~1e-7 bins of
    its place (the reference's fp32 linspace edges: ~ulp(v_max) / w ~ 2e-6 bins; u itself in fp32 would
    be off by ~ulp(K) ~ 1e-5 bins).
    """
    y = tl.load(targets_ptr + rows.to(tl.int64) * targets_stride_b, mask=row_mask, other=0.0)
    # The reference casts the targets to the compute dtype first, then clips.
    y = y.to(ACC).to(tl.float64)
    lo = tl.full([], v_min, tl.float64)
    hi = tl.full([], v_max, tl.float64)
    # PropagateNan.ALL: torch.clamp keeps a NaN target NaN.
    y = tl.maximum(y, lo, propagate_nan=tl.PropagateNan.ALL)
    y = tl.minimum(y, hi, propagate_nan=tl.PropagateNan.ALL)
    u = (y - lo) * (num_bins - 1) / (hi - lo)  # [BLOCK_B] in [0, K - 1]
    n_float = tl.floor(u)
    frac = (u - n_float).to(ACC)
    n = n_float.to(ACC)  # an integer <= K - 1: exact, and so are the differences j - n below
    inv_sqrt2_sigma = tl.full([], INV_SQRT2, ACC) / tl.full([], sigma_ratio, ACC)
    offset = 0.5 + frac  # [BLOCK_B]; the edge j sits at (j - n) - offset bins from the target
    norm = (tl.math.erf(((num_bins - n) - offset) * inv_sqrt2_sigma)
            - tl.math.erf((-n - offset) * inv_sqrt2_sigma))  # e_K - e_0
    index = cols.to(ACC)
    left = (index[None, :] - n[:, None]) - offset[:, None]
    right = ((index + 1.0)[None, :] - n[:, None]) - offset[:, None]
    # Far from y both erfs saturate to +-1 and p is exactly 0, as in the reference (its -inf guard).
    mass = tl.math.erf(right * inv_sqrt2_sigma) - tl.math.erf(left * inv_sqrt2_sigma)
    return mass / norm[:, None]


@triton.jit
def _row_sum(x):
    """Sum over axis 1 in fp64, for the decode kernels. Summing in fp32 adds ~log2(K) roundings of the
    partial sums, the larger share of the error in q = sum s c (which cancels: |c| ~ 15, q ~ 0): enough
    to lose to the reference's error by 2-4x on some batches. Cost: a convert and an fp64 add per element,
    hidden behind memory on H100/H200 (fp64 at half the fp32 rate). The CE kernel sums in fp32: its
    histogram is already several times more accurate than the reference's, and with two erf per element
    it has less ALU to spare."""
    return tl.sum(x.to(tl.float64), axis=1)


@triton.jit
def _softmax_block(logits_ptr, rows, row_mask, cols, mask, logits_stride_b, logits_stride_k,
                   ACC: tl.constexpr, SUM_FP64: tl.constexpr):
    """(z = x - max, exp(z), sum exp(z)) of a [BLOCK_B, BLOCK_K] logits block, the sum in fp32 (ACC) or fp64.

    -inf padding keeps masked lanes out of the max and gives them exp = 0; padded rows (beyond B) get
    max 0 and sum 1 so that they stay NaN-free (they are never stored).
    """
    offsets = rows.to(tl.int64)[:, None] * logits_stride_b + cols[None, :] * logits_stride_k
    x = tl.load(logits_ptr + offsets, mask=mask, other=-float("inf")).to(ACC)
    row_max = tl.where(row_mask, tl.max(x, axis=1), 0.0)
    z = x - row_max[:, None]
    e = tl.exp(z)
    total = _row_sum(e) if SUM_FP64 else tl.sum(e, axis=1)
    return z, e, tl.where(row_mask, total, 1.0)


@triton.jit
def _centres(cols, num_bins, v_min, v_max):
    """Bin centres linspace(v_min, v_max, K) [BLOCK_K] in fp64: one vector per program, so exact centres
    cost nothing per element, and q = sum s c (which cancels: |c| ~ 15, q ~ 0) loses nothing to them."""
    lo = tl.full([], v_min, tl.float64)
    width = (tl.full([], v_max, tl.float64) - lo) / (num_bins - 1)
    return lo + cols.to(tl.float64) * width


@triton.jit
def _hl_gauss_ce_fwd_kernel(
    logits_ptr,  # [B, K] fp32 / bf16 / fp16 / fp64, any strides
    targets_ptr,  # [B] any float (or int) dtype, any stride
    loss_ptr,  # [B] ACC (fp32, or fp64 for fp64 logits), contiguous
    grad_ptr,  # [B, K] ACC, contiguous: d loss / d logits (unused when WRITE_GRAD is False)
    num_rows,
    num_bins,
    logits_stride_b,
    logits_stride_k,
    targets_stride_b,
    v_min: "fp64",  # fp64 so that a float64 run sees the support exactly
    v_max: "fp64",
    sigma_ratio: "fp64",
    WRITE_GRAD: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """loss_b = -sum_i p_bi log_softmax(x_b)_i and (WRITE_GRAD) grad_bi = softmax(x_b)_i - p_bi.

    p = hist(targets) as in `_hist_block`. One program owns BLOCK_B rows of BLOCK_K >= K lanes.
    Memory traffic: reads B*K logits and B targets once; writes B losses and (WRITE_GRAD) the B*K
    gradient in ACC. For B = 4096, K = 151 in fp32: 2.5 MB read, 2.5 MB written.
    """
    ACC = loss_ptr.dtype.element_ty
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_K)
    row_mask = rows < num_rows
    col_mask = cols < num_bins
    mask = row_mask[:, None] & col_mask[None, :]

    p = tl.where(mask, _hist_block(targets_ptr, rows, row_mask, cols, num_bins, targets_stride_b, v_min,
                                   v_max, sigma_ratio, ACC), 0.0)
    z, e, total = _softmax_block(logits_ptr, rows, row_mask, cols, mask, logits_stride_b,
                                 logits_stride_k, ACC, SUM_FP64=False)
    log_softmax = z - tl.log(total)[:, None]
    # The selects keep 0 * (-inf) = NaN out where p is exactly 0 (padding, or an -inf logit far from the
    # target: legal); the outer one also maps a NaN p to 0, as the reference's select does.
    has_mass = p > 0
    loss = -tl.sum(tl.where(has_mass, p * tl.where(has_mass, log_softmax, 0.0), 0.0), axis=1)
    tl.store(loss_ptr + rows, loss, mask=row_mask)
    if WRITE_GRAD:
        # sum p = 1, so d/dx_i of -sum_j p_j (x_j - lse) is softmax_i - p_i.
        grad = e / total[:, None] - p
        tl.store(grad_ptr + rows.to(tl.int64)[:, None] * num_bins + cols[None, :], grad, mask=mask)


@triton.jit
def _hl_gauss_decode_fwd_kernel(
    logits_ptr,  # [B, K] fp32 / bf16 / fp16 / fp64, any strides
    q_ptr,  # [B] ACC, contiguous
    num_rows,
    num_bins,
    logits_stride_b,
    logits_stride_k,
    v_min: "fp64",
    v_max: "fp64",
    BLOCK_B: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """q_b = sum_i softmax(x_b)_i c_i with centres c_i = linspace(v_min, v_max, K)_i.

    Formed as sum_i exp(z_i) c_i / sum_i exp(z_i) in fp64 from fp32 exp(z_i) (one division per row);
    v_min + w E[i] would cancel catastrophically when q ~ 0 << |v_min|.
    Memory traffic: reads B*K logits, writes B values.
    """
    ACC = q_ptr.dtype.element_ty
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_K)
    row_mask = rows < num_rows
    mask = row_mask[:, None] & (cols < num_bins)[None, :]
    _, e, total = _softmax_block(logits_ptr, rows, row_mask, cols, mask, logits_stride_b,
                                 logits_stride_k, ACC, SUM_FP64=True)
    centres = _centres(cols, num_bins, v_min, v_max)
    tl.store(q_ptr + rows, _row_sum(e.to(tl.float64) * centres[None, :]) / total, mask=row_mask)


@triton.jit
def _hl_gauss_decode_bwd_kernel(
    logits_ptr,  # [B, K] fp32 / bf16 / fp16 / fp64, any strides
    grad_q_ptr,  # [B] upstream gradient, any float dtype and stride (0 for an expanded scalar)
    grad_logits_ptr,  # [B, K] the logits' dtype, contiguous
    num_rows,
    num_bins,
    logits_stride_b,
    logits_stride_k,
    grad_q_stride_b,
    v_min: "fp64",
    v_max: "fp64",
    BLOCK_B: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """grad_bi = g_b softmax(x_b)_i (c_i - q_b): exp in fp32 (fp64 for fp64 logits), the rest in fp64 and
    rounded once (the softmax backward of the reference rounds ~5 times).

    The softmax and q are recomputed rather than saved by the forward: saving the softmax would write
    B*K more and read them back. Memory traffic: reads B*K logits and B upstream values, writes B*K.
    """
    ACC = tl.float64 if logits_ptr.dtype.element_ty == tl.float64 else tl.float32
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_K)
    row_mask = rows < num_rows
    mask = row_mask[:, None] & (cols < num_bins)[None, :]
    _, e, total = _softmax_block(logits_ptr, rows, row_mask, cols, mask, logits_stride_b,
                                 logits_stride_k, ACC, SUM_FP64=True)
    e = e.to(tl.float64)
    centres = _centres(cols, num_bins, v_min, v_max)[None, :]
    q = tl.sum(e * centres, axis=1) / total
    upstream = tl.load(grad_q_ptr + rows.to(tl.int64) * grad_q_stride_b, mask=row_mask, other=0.0)
    grad = (e * (centres - q[:, None]) * (upstream.to(tl.float64) / total)[:, None]).to(ACC)
    grad = round_for_store(grad, grad_logits_ptr)
    tl.store(grad_logits_ptr + rows.to(tl.int64)[:, None] * num_bins + cols[None, :], grad, mask=mask)


@triton.jit
def _hl_gauss_hist_fwd_kernel(
    targets_ptr,  # [B] any float (or int) dtype, any stride
    probs_ptr,  # [B, K] ACC (fp32, or fp64 for fp64 targets), contiguous
    num_rows,
    num_bins,
    targets_stride_b,
    v_min: "fp64",
    v_max: "fp64",
    sigma_ratio: "fp64",
    BLOCK_B: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """probs_bi = p_bi, the histogram of `_hist_block`. Memory traffic: reads B targets, writes B*K."""
    ACC = probs_ptr.dtype.element_ty
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_K)
    row_mask = rows < num_rows
    mask = row_mask[:, None] & (cols < num_bins)[None, :]
    p = _hist_block(targets_ptr, rows, row_mask, cols, num_bins, targets_stride_b, v_min, v_max, sigma_ratio,
                    ACC)
    tl.store(probs_ptr + rows.to(tl.int64)[:, None] * num_bins + cols[None, :], p, mask=mask)


def _launch_config(num_rows: int, num_bins: int):
    """(grid, BLOCK_B, BLOCK_K, num_warps): K padded to a power of two (151 -> 256), BLOCK_B rows fill a
    ~_MAX_LANES-lane block, 16 lanes a thread and at least 4 warps."""
    if num_bins > MAX_BINS:
        raise ValueError(f"num_bins = {num_bins} > {MAX_BINS}: a row must fit in one program's registers")
    block_k = triton.next_power_of_2(num_bins)
    block_b = _common.block_size(num_rows, block_k, _MAX_LANES)
    num_warps = _common.num_warps(block_b * block_k, lanes_per_thread=16, min_warps=4)
    return _common.grid_over(num_rows, block_b), block_b, block_k, num_warps


def _launch_ce(logits, targets, v_min, v_max, sigma_ratio, with_grad):
    """Strided inputs are read in place (the kernels take strides): a .contiguous() copy would cost one
    more read and write of [B, K]. Outputs are contiguous."""
    num_rows, num_bins = logits.shape
    dtype = compute_dtype(logits)
    loss = torch.empty(num_rows, dtype=dtype, device=logits.device)
    grad = torch.empty((num_rows, num_bins) if with_grad else (0,), dtype=dtype, device=logits.device)
    if num_rows == 0:
        return loss, grad
    grid, block_b, block_k, num_warps = _launch_config(num_rows, num_bins)
    _common.launch(
        _hl_gauss_ce_fwd_kernel, grid,
        logits, targets, loss, grad if with_grad else loss, num_rows, num_bins,
        logits.stride(0), logits.stride(1), targets.stride(0), v_min, v_max, sigma_ratio,
        WRITE_GRAD=with_grad, BLOCK_B=block_b, BLOCK_K=block_k, num_warps=num_warps)
    return loss, grad


def _launch_decode(logits, v_min, v_max):
    num_rows, num_bins = logits.shape
    q = torch.empty(num_rows, dtype=compute_dtype(logits), device=logits.device)
    if num_rows == 0:
        return q
    grid, block_b, block_k, num_warps = _launch_config(num_rows, num_bins)
    _common.launch(
        _hl_gauss_decode_fwd_kernel, grid,
        logits, q, num_rows, num_bins, logits.stride(0), logits.stride(1), v_min, v_max,
        BLOCK_B=block_b, BLOCK_K=block_k, num_warps=num_warps)
    return q


def _launch_decode_bwd(logits, grad_q, v_min, v_max):
    num_rows, num_bins = logits.shape
    grad = torch.empty((num_rows, num_bins), dtype=logits.dtype, device=logits.device)
    if num_rows == 0:
        return grad
    grid, block_b, block_k, num_warps = _launch_config(num_rows, num_bins)
    _common.launch(
        _hl_gauss_decode_bwd_kernel, grid,
        logits, grad_q, grad, num_rows, num_bins, logits.stride(0), logits.stride(1), grad_q.stride(0),
        v_min, v_max, BLOCK_B=block_b, BLOCK_K=block_k, num_warps=num_warps)
    return grad


def _launch_hist(targets, num_bins, v_min, v_max, sigma_ratio):
    num_rows = targets.shape[0]
    probs = torch.empty((num_rows, num_bins), dtype=compute_dtype(targets), device=targets.device)
    if num_rows == 0:
        return probs
    grid, block_b, block_k, num_warps = _launch_config(num_rows, num_bins)
    _common.launch(
        _hl_gauss_hist_fwd_kernel, grid,
        targets, probs, num_rows, num_bins, targets.stride(0), v_min, v_max, sigma_ratio,
        BLOCK_B=block_b, BLOCK_K=block_k, num_warps=num_warps)
    return probs


@torch.library.custom_op("reppo_fast::hl_gauss_ce", mutates_args=())
def _ce_op(logits: torch.Tensor, targets: torch.Tensor, v_min: float, v_max: float, sigma_ratio: float,
           with_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss [B], d loss/d logits [B, K], or [0] when not with_grad), both in the compute dtype."""
    return _launch_ce(logits, targets, v_min, v_max, sigma_ratio, with_grad)


@_ce_op.register_fake
def _(logits, targets, v_min, v_max, sigma_ratio, with_grad):
    dtype = compute_dtype(logits)
    return (logits.new_empty(logits.shape[:1], dtype=dtype),
            logits.new_empty(logits.shape if with_grad else (0,), dtype=dtype))


def _ce_setup_context(ctx, inputs, output):
    ctx.logits_dtype = inputs[0].dtype
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1])


def _ce_backward(ctx, grad_loss, grad_dlogits):
    (dlogits,) = ctx.saved_tensors
    if dlogits.dim() != 2:
        raise RuntimeError("hl_gauss_ce: the forward ran without its gradient (with_grad=False)")
    # The one multiply. Reads B*K + B, writes B*K in the logits' dtype (a fused mul + cast under compile).
    return (grad_loss[:, None] * dlogits).to(ctx.logits_dtype), None, None, None, None, None


_ce_op.register_autograd(_ce_backward, setup_context=_ce_setup_context)


@torch.library.custom_op("reppo_fast::hl_gauss_decode", mutates_args=())
def _decode_op(logits: torch.Tensor, v_min: float, v_max: float) -> torch.Tensor:
    return _launch_decode(logits, v_min, v_max)


@_decode_op.register_fake
def _(logits, v_min, v_max):
    return logits.new_empty(logits.shape[:1], dtype=compute_dtype(logits))


@torch.library.custom_op("reppo_fast::hl_gauss_decode_bwd", mutates_args=())
def _decode_bwd_op(logits: torch.Tensor, grad_q: torch.Tensor, v_min: float, v_max: float) -> torch.Tensor:
    return _launch_decode_bwd(logits, grad_q, v_min, v_max)


@_decode_bwd_op.register_fake
def _(logits, grad_q, v_min, v_max):
    return logits.new_empty(logits.shape)


def _decode_setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.support = inputs[1:]


def _decode_backward(ctx, grad_q):
    (logits,) = ctx.saved_tensors
    return _decode_bwd_op(logits, grad_q, *ctx.support), None, None


_decode_op.register_autograd(_decode_backward, setup_context=_decode_setup_context)


@torch.library.custom_op("reppo_fast::hl_gauss_hist", mutates_args=())
def _hist_op(targets: torch.Tensor, num_bins: int, v_min: float, v_max: float,
             sigma_ratio: float) -> torch.Tensor:
    return _launch_hist(targets, num_bins, v_min, v_max, sigma_ratio)


@_hist_op.register_fake
def _(targets, num_bins, v_min, v_max, sigma_ratio):
    return targets.new_empty((targets.shape[0], num_bins), dtype=compute_dtype(targets))


def _rows(x: torch.Tensor, num_bins: int) -> torch.Tensor:
    """[..., K] -> [B, K], a view whenever the strides allow (the reference takes any leading shape)."""
    return x.reshape(-1, num_bins)


def hl_gauss_ce(logits, targets, *, v_min, v_max, sigma_ratio=0.75) -> torch.Tensor:
    """Unreduced HL-Gauss cross-entropy loss [B] of logits [B, K] against scalar targets [B].

        loss = -sum_i p_i * log_softmax(logits)_i,    p = hl_gauss_hist(targets)   (K = logits.shape[-1])
        d loss / d logits = upstream * (softmax(logits) - p)      (sum p = 1); targets get no gradient.

    One fused kernel; the gradient is written during the forward whenever autograd will need it.
    Leading dims [..., K] / [...] work as in the reference. Inputs may be non-contiguous.
    Dtype: float32/float64 follow the logits (targets are cast to it); bf16/f16 logits are computed
    and returned in float32 (their gradient is returned in their own dtype).
    """
    num_bins = logits.shape[-1]
    _check_support(num_bins, v_min, v_max, sigma_ratio)
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets {tuple(targets.shape)} must match logits {tuple(logits.shape)}[:-1]")
    with_grad = torch.is_grad_enabled() and logits.requires_grad
    loss, _ = _ce_op(_rows(logits, num_bins), targets.detach().reshape(-1), float(v_min), float(v_max),
                     float(sigma_ratio), with_grad)
    return loss.reshape(targets.shape)


def hl_gauss_decode(logits, *, v_min, v_max) -> torch.Tensor:
    """Expected value q [B] = sum_i softmax(logits)_i * centre_i of logits [B, K].

    Centres linspace(v_min, v_max, K). Differentiable w.r.t. the logits (a recomputing backward kernel:
    d q/d x_i = softmax_i (centre_i - q)). Dtype rule as in hl_gauss_ce.
    """
    num_bins = logits.shape[-1]
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    return _decode_op(_rows(logits, num_bins), float(v_min), float(v_max)).reshape(logits.shape[:-1])


def hl_gauss_hist(targets, *, num_bins, v_min, v_max, sigma_ratio=0.75) -> torch.Tensor:
    """Target histogram p [B, K] of scalar targets [B] (K = num_bins); rows sum to 1. Its own kernel,
    sharing `_hist_block` with the loss.

    Bin centres linspace(v_min, v_max, K), width w = (v_max - v_min)/(K - 1), K+1 edges at the
    centres -+ w/2, sigma = sigma_ratio * w. With y = clip(target, v_min, v_max):
        e_j = erf((edge_j - y) / (sqrt(2) sigma)),   p_i = (e_{i+1} - e_i) / (e_K - e_0)
    No gradient. Dtype: float32/float64 follow the targets; anything else is computed and returned in
    float32.
    """
    _check_support(num_bins, v_min, v_max, sigma_ratio)
    probs = _hist_op(targets.detach().reshape(-1), int(num_bins), float(v_min), float(v_max),
                     float(sigma_ratio))
    return probs.reshape(*targets.shape, num_bins)

