"""Fused Triton tanh-Gaussian: sample, log-prob and KL to a frozen old policy (docs/algorithms.md sections 2,
6).

Drop-in for `reppo_fast.kernels.reference_torch.tanh_normal` (same name, arguments and
`TanhNormalOut`). One forward kernel computes action, log_prob and kl per block of rows; one backward
kernel recomputes everything it needs from the inputs (no S*B*A intermediates are saved) and writes
d/dmean and d/dlog_std. Both are `torch.library` custom ops, so torch.compile sees two opaque ops and
CUDA graphs can capture them (no host syncs, shapes known from the inputs).

Strided inputs are read in place: mean and log_std usually come from `actor(obs).chunk(2, -1)`, whose
rows have stride 2A, and a `.contiguous()` copy would cost two extra launches and 4*B*A bytes.
"""

from typing import Optional

import torch
import triton
import triton.language as tl

from ..reference_torch._dtype import compute_dtype
from ..reference_torch.tanh_normal import TanhNormalOut
from . import _common
from ._common import round_for_store

__all__ = ["TanhNormalOut", "tanh_normal"]

_KL_NONE, _KL_ANALYTIC, _KL_SAMPLED = 0, 1, 2
# Elements per program: (2048, 21) -> 128 programs of 16 x 32, about one per H100 SM; 4 warps, so 4
# elements a thread.
_MAX_LANES = 512


@triton.jit
def _exp(x):
    """exp(x) correctly rounded to float32 (but for about 1 in 10^7 arguments), on every backend.

    tl.exp is ex2.approx(x log2 e) on the GPU (several ulp for |x| > 10) and numpy's exp (up to 2.4
    ulp) in the interpreter, while torch's float32 exp is within ~0.55 ulp. exp(log_std) feeds every
    output and the KL terms square it, so its error would decide the comparison with the reference.
    Hence a float64 evaluation, rounded once: x = k ln2 + r with |r| <= ln2/2, a degree-9 Taylor
    polynomial (truncation 7e-12), 2^k as exponent bits. About 15 float64 FMAs per call, 5 calls per
    element: free in these memory-bound kernels on H100/H200 (FP64 at half the FP32 rate).
    float64 inputs use tl.exp (libdevice on the GPU).
    """
    if x.dtype == tl.float64:
        return tl.exp(x)
    xd = tl.minimum(tl.maximum(x, -104.0), 89.0).to(tl.float64)
    k = tl.floor(xd * 1.4426950408889634 + 0.5)
    r = xd - k * 0.6931471805599453
    p = r * (1.0 / 362880.0) + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    scale = ((k.to(tl.int64) + 1023) << 52).to(tl.float64, bitcast=True)
    return tl.where(x != x, x, (p * scale).to(tl.float32))


@triton.jit
def _exp_neg_2abs(u):
    """e = exp(-2|u|), tanh(u) and log(1 - tanh(u)^2), accurate for every u (no tl.tanh/libdevice).

    |u| >= 0.55 (e <= 1/3): tanh|u| = 1 - 2e/(1 + e), within 1.5 ulp and exactly 1 once e underflows.
    |u| < 0.55, where 1 - e cancels: float32 sums the odd Taylor series to u^17 (truncation 2e-9,
    within 0.6 ulp); float64 uses expm1(-2|u|) by Kahan's trick (e - 1) x / log(e), whose rounding
    errors of e and log(e) cancel, and tanh|u| = -expm1/(2 + expm1).
    log(1 - tanh^2) = 2 (log 2 - u - softplus(-2u)) = 2 (log 2 - |u| - log1p(e)), log1p by the same
    trick: log(w) e / (w - 1), w = 1 + e. Clamped operands keep the unused side of each where finite.
    """
    au = tl.abs(u)
    e = _exp(-2.0 * au)
    one_plus_e = 1.0 + e
    big = 1.0 - 2.0 * e / one_plus_e
    if u.dtype == tl.float64:
        x = -2.0 * au
        e_c = tl.maximum(e, 0.25)
        log_e = tl.log(e_c)
        expm1 = tl.where(e == 1.0, x, (e_c - 1.0) * (x / tl.where(log_e == 0.0, 1.0, log_e)))
        small = -expm1 / (2.0 + expm1)
    else:
        s = au * au
        p = 0.0005900274409455859  # tanh(x) = x + x^3 p(x^2); Taylor coefficients of x^17 .. x^3
        p = p * s - 0.0014558343870513183
        p = p * s + 0.003592128036572481
        p = p * s - 0.008863235529902197
        p = p * s + 0.021869488536155203
        p = p * s - 0.05396825396825397
        p = p * s + 0.13333333333333333
        p = p * s - 0.3333333333333333
        small = au + au * s * p
    tanh_abs = tl.where(au < 0.55, small, big)
    t = tl.where(u < 0.0, -tanh_abs, tanh_abs)
    log1p_e = tl.where(one_plus_e == 1.0, e,
                       tl.log(one_plus_e) * (e / tl.where(one_plus_e == 1.0, 1.0, one_plus_e - 1.0)))
    log_det = 2.0 * (0.6931471805599453 - au - log1p_e)  # log(1 - tanh(u)^2)
    return e, t, log_det


@triton.jit
def _kahan_add(total, comp, x):
    """Compensated total += x (Kahan): a plain sum of S terms z^2 (up to ~1e3 when the policies are
    far apart) rounds S times; the two extra adds are free in a memory-bound loop."""
    y = x - comp
    t = total + y
    return t, (t - total) - y


@triton.jit
def _tanh_normal_fwd_kernel(
    mean_ptr,  # [B, A] any float dtype, strided
    log_std_ptr,  # [B, A]
    noise_ptr,  # [B, A]
    old_mean_ptr,  # [B, A] (unused when KL_MODE == 0)
    old_log_std_ptr,  # [B, A] (unused when KL_MODE == 0)
    old_noise_ptr,  # [S, B, A] (read only when KL_MODE == 2)
    action_ptr,  # [B, A] out, contiguous
    log_prob_ptr,  # [B] out
    kl_ptr,  # [B] out (zeros when KL_MODE == 0)
    num_rows, num_actions, num_samples,
    mean_stride_b, mean_stride_a, log_std_stride_b, log_std_stride_a, noise_stride_b, noise_stride_a,
    old_mean_stride_b, old_mean_stride_a, old_log_std_stride_b, old_log_std_stride_a,
    old_noise_stride_s, old_noise_stride_b, old_noise_stride_a,
    KL_MODE: tl.constexpr,  # 0 none, 1 analytic, 2 sampled over the S old_noise draws
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for float64 inputs
    BLOCK_B: tl.constexpr, BLOCK_A: tl.constexpr,
):
    # Bytes: reads 3*B*A (mean, log_std, noise) + 2*B*A (old policy) + S*B*A (old_noise),
    # writes B*A (action) + 2*B (log_prob, kl). Everything else lives in registers.
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_A)
    r = rows[:, None]
    c = cols[None, :]
    mask = (r < num_rows) & (c < num_actions)
    mean = tl.load(mean_ptr + r * mean_stride_b + c * mean_stride_a, mask=mask, other=0.0).to(ACC)
    log_std = tl.load(log_std_ptr + r * log_std_stride_b + c * log_std_stride_a, mask=mask,
                      other=0.0).to(ACC)
    noise = tl.load(noise_ptr + r * noise_stride_b + c * noise_stride_a, mask=mask, other=0.0).to(ACC)

    u = mean + _exp(log_std) * noise
    _, t, log_det = _exp_neg_2abs(u)
    tl.store(action_ptr + r * num_actions + c, t, mask=mask)
    # (u - mean)/std == noise exactly, so the Gaussian term uses noise (pathwise log-density).
    lp = -0.5 * noise * noise - log_std - 0.9189385332046727 - log_det  # log(2 pi)/2
    tl.store(log_prob_ptr + rows, tl.sum(tl.where(mask, lp, 0.0), axis=1), mask=rows < num_rows)

    kl = tl.zeros([BLOCK_B, BLOCK_A], dtype=ACC)
    if KL_MODE != 0:
        old_mean = tl.load(old_mean_ptr + r * old_mean_stride_b + c * old_mean_stride_a, mask=mask,
                           other=0.0).to(ACC)
        old_log_std = tl.load(old_log_std_ptr + r * old_log_std_stride_b + c * old_log_std_stride_a,
                              mask=mask, other=0.0).to(ACC)
        inv_std = _exp(-log_std)
        if KL_MODE == 1:
            # Exact KL per dim: log s - log s0 + (s0^2 + (m0 - m)^2)/(2 s^2) - 1/2, with
            # s0^2/s^2 = exp(2 (log s0 - log s)) so exp(2 log s) never overflows.
            z = (old_mean - mean) * inv_std
            kl = log_std - old_log_std + 0.5 * _exp(2.0 * (old_log_std - log_std)) + 0.5 * z * z - 0.5
        else:
            # Sampled in pre-tanh space (the tanh Jacobian cancels): u_j = m0 + s0 eps_j,
            # log N(u_j; old) - log N(u_j; new) = z_j^2/2 - eps_j^2/2 + log s - log s0, z_j = (u_j - m)/s.
            old_std = _exp(old_log_std)
            acc = tl.zeros([BLOCK_B, BLOCK_A], dtype=ACC)
            acc_c = tl.zeros([BLOCK_B, BLOCK_A], dtype=ACC)
            for j in range(num_samples):
                eps = tl.load(old_noise_ptr + j * old_noise_stride_s + r * old_noise_stride_b
                              + c * old_noise_stride_a, mask=mask, other=0.0).to(ACC)
                z = (old_mean + old_std * eps - mean) * inv_std
                acc, acc_c = _kahan_add(acc, acc_c, 0.5 * z * z - 0.5 * eps * eps)
            kl = acc / num_samples + log_std - old_log_std
    tl.store(kl_ptr + rows, tl.sum(tl.where(mask, kl, 0.0), axis=1), mask=rows < num_rows)


@triton.jit
def _tanh_normal_bwd_kernel(
    mean_ptr,  # [B, A] strided, as in the forward
    log_std_ptr,  # [B, A]
    noise_ptr,  # [B, A]
    old_mean_ptr,  # [B, A]
    old_log_std_ptr,  # [B, A]
    old_noise_ptr,  # [S, B, A]
    g_action_ptr,  # [B, A] upstream d/daction (unread when HAS_G_ACTION is False)
    g_log_prob_ptr,  # [B] upstream d/dlog_prob
    g_kl_ptr,  # [B] upstream d/dkl
    grad_mean_ptr,  # [B, A] out, contiguous, mean's dtype
    grad_log_std_ptr,  # [B, A] out, contiguous, log_std's dtype
    num_rows, num_actions, num_samples,
    mean_stride_b, mean_stride_a, log_std_stride_b, log_std_stride_a, noise_stride_b, noise_stride_a,
    old_mean_stride_b, old_mean_stride_a, old_log_std_stride_b, old_log_std_stride_a,
    old_noise_stride_s, old_noise_stride_b, old_noise_stride_a,
    g_action_stride_b, g_action_stride_a, g_log_prob_stride_b, g_kl_stride_b,
    KL_MODE: tl.constexpr, ACC: tl.constexpr,
    HAS_G_ACTION: tl.constexpr, HAS_G_LOG_PROB: tl.constexpr, HAS_G_KL: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_A: tl.constexpr,
):
    # Maths, with s = exp(log_std), u = mean + s*noise, t = tanh(u), du/dmean = 1, du/dlog_std = s*noise:
    #   d action/du   = 1 - t^2 = 4e/(1 + e)^2, e = exp(-2|u|)   (no cancellation in 1 - t^2 at large |u|)
    #   d log_prob/du = -d/du 2(log 2 - u - softplus(-2u)) = 2 - 4 sigmoid(-2u) = 2t;
    #   d log_prob/dlog_std has the direct term -1 per component (noise is a constant sample).
    #   sampled kl, z_j = (u_j - mean)/s with dz/dmean = -1/s and dz/dlog_std = -z:
    #     d/dmean = -mean_j(z_j)/s,  d/dlog_std = 1 - mean_j(z_j^2)
    #   analytic kl: d/dmean = (mean - old_mean)/s^2, d/dlog_std = 1 - (s0^2 + (old_mean - mean)^2)/s^2.
    # Nothing flows to noise or the old policy (constants, as in the reference).
    # Bytes: reads 5*B*A + S*B*A + B*A (g_action) + 2*B, writes 2*B*A; u, t and z are recomputed.
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_A)
    r = rows[:, None]
    c = cols[None, :]
    row_mask = rows < num_rows
    mask = (r < num_rows) & (c < num_actions)
    mean = tl.load(mean_ptr + r * mean_stride_b + c * mean_stride_a, mask=mask, other=0.0).to(ACC)
    log_std = tl.load(log_std_ptr + r * log_std_stride_b + c * log_std_stride_a, mask=mask,
                      other=0.0).to(ACC)
    noise = tl.load(noise_ptr + r * noise_stride_b + c * noise_stride_a, mask=mask, other=0.0).to(ACC)
    std = _exp(log_std)
    u = mean + std * noise
    e, t, _ = _exp_neg_2abs(u)

    g_u = tl.zeros([BLOCK_B, BLOCK_A], dtype=ACC)
    grad_log_std = tl.zeros([BLOCK_B, BLOCK_A], dtype=ACC)
    if HAS_G_ACTION:
        g_action = tl.load(g_action_ptr + r * g_action_stride_b + c * g_action_stride_a, mask=mask,
                           other=0.0).to(ACC)
        one_plus_e = 1.0 + e
        g_u += g_action * (4.0 * e / (one_plus_e * one_plus_e))
    if HAS_G_LOG_PROB:
        g_log_prob = tl.load(g_log_prob_ptr + rows * g_log_prob_stride_b, mask=row_mask,
                             other=0.0).to(ACC)[:, None]
        g_u += g_log_prob * (2.0 * t)
        grad_log_std -= g_log_prob
    grad_mean = g_u
    grad_log_std += g_u * std * noise

    if KL_MODE != 0:
        if HAS_G_KL:  # (nested: an unused kl output passes no upstream gradient)
            g_kl = tl.load(g_kl_ptr + rows * g_kl_stride_b, mask=row_mask, other=0.0).to(ACC)[:, None]
            old_mean = tl.load(old_mean_ptr + r * old_mean_stride_b + c * old_mean_stride_a, mask=mask,
                               other=0.0).to(ACC)
            old_log_std = tl.load(old_log_std_ptr + r * old_log_std_stride_b + c * old_log_std_stride_a,
                                  mask=mask, other=0.0).to(ACC)
            inv_std = _exp(-log_std)
            if KL_MODE == 1:
                z = (old_mean - mean) * inv_std
                d_mean = -z * inv_std
                d_log_std = 1.0 - _exp(2.0 * (old_log_std - log_std)) - z * z
            else:
                old_std = _exp(old_log_std)
                sum_z = tl.zeros([BLOCK_B, BLOCK_A], dtype=ACC)
                sum_z2 = tl.zeros([BLOCK_B, BLOCK_A], dtype=ACC)
                sum_z_c = tl.zeros([BLOCK_B, BLOCK_A], dtype=ACC)
                sum_z2_c = tl.zeros([BLOCK_B, BLOCK_A], dtype=ACC)
                for j in range(num_samples):
                    eps = tl.load(old_noise_ptr + j * old_noise_stride_s + r * old_noise_stride_b
                                  + c * old_noise_stride_a, mask=mask, other=0.0).to(ACC)
                    z = (old_mean + old_std * eps - mean) * inv_std
                    sum_z, sum_z_c = _kahan_add(sum_z, sum_z_c, z)
                    sum_z2, sum_z2_c = _kahan_add(sum_z2, sum_z2_c, z * z)
                d_mean = -(sum_z / num_samples) * inv_std
                d_log_std = 1.0 - sum_z2 / num_samples
            grad_mean += g_kl * d_mean
            grad_log_std += g_kl * d_log_std
    tl.store(grad_mean_ptr + r * num_actions + c, round_for_store(grad_mean, grad_mean_ptr), mask=mask)
    tl.store(grad_log_std_ptr + r * num_actions + c, round_for_store(grad_log_std, grad_log_std_ptr),
             mask=mask)


def _launch_config(num_rows: int, num_actions: int):
    """(grid, BLOCK_B, BLOCK_A): BLOCK_A covers a whole row (A is small: 1..~64); BLOCK_B rows fill a
    ~_MAX_LANES-element tile."""
    block_a = triton.next_power_of_2(max(num_actions, 1))  # A = 0: one masked column, sums of nothing are 0
    block_b = _common.block_size(num_rows, block_a, _MAX_LANES)
    return _common.grid_over(num_rows, block_b), block_b, block_a


def _kl_mode(old_mean, old_noise) -> int:
    return _KL_NONE if old_mean is None else (_KL_ANALYTIC if old_noise is None else _KL_SAMPLED)


def _old_args(mean, old_mean, old_log_std, old_noise):
    """Pointers and strides for the optional tensors; absent ones are replaced by `mean` (never read)."""
    om = mean if old_mean is None else old_mean
    ols = mean if old_log_std is None else old_log_std
    on = mean if old_noise is None else old_noise
    on_strides = (0, *mean.stride()) if old_noise is None else old_noise.stride()
    num_samples = 0 if old_noise is None else old_noise.shape[0]
    return (om, ols, on), (*om.stride(), *ols.stride(), *on_strides), num_samples


@torch.library.custom_op("reppo_fast::tanh_normal_fwd", mutates_args=())
def _tanh_normal_fwd(mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor,
                     old_mean: Optional[torch.Tensor], old_log_std: Optional[torch.Tensor],
                     old_noise: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    num_rows, num_actions = mean.shape
    out_dtype = compute_dtype(mean, log_std, noise, old_mean, old_log_std, old_noise)
    action = torch.empty((num_rows, num_actions), dtype=out_dtype, device=mean.device)
    log_prob = torch.empty((num_rows,), dtype=out_dtype, device=mean.device)
    kl = torch.empty((num_rows,), dtype=out_dtype, device=mean.device)
    old_ptrs, old_strides, num_samples = _old_args(mean, old_mean, old_log_std, old_noise)
    if num_rows == 0:
        return action, log_prob, kl
    grid, block_b, block_a = _launch_config(num_rows, num_actions)
    _common.launch(
        _tanh_normal_fwd_kernel, grid,
        mean, log_std, noise, *old_ptrs, action, log_prob, kl, num_rows, num_actions, num_samples,
        *mean.stride(), *log_std.stride(), *noise.stride(), *old_strides,
        KL_MODE=_kl_mode(old_mean, old_noise), ACC=_common.acc_dtype(out_dtype),
        BLOCK_B=block_b, BLOCK_A=block_a, num_warps=4)
    return action, log_prob, kl


@_tanh_normal_fwd.register_fake
def _(mean, log_std, noise, old_mean, old_log_std, old_noise):
    out_dtype = compute_dtype(mean, log_std, noise, old_mean, old_log_std, old_noise)
    num_rows, num_actions = mean.shape
    return (mean.new_empty((num_rows, num_actions), dtype=out_dtype),
            mean.new_empty((num_rows,), dtype=out_dtype), mean.new_empty((num_rows,), dtype=out_dtype))


@torch.library.custom_op("reppo_fast::tanh_normal_bwd", mutates_args=())
def _tanh_normal_bwd(mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor,
                     old_mean: Optional[torch.Tensor], old_log_std: Optional[torch.Tensor],
                     old_noise: Optional[torch.Tensor], g_action: Optional[torch.Tensor],
                     g_log_prob: Optional[torch.Tensor], g_kl: Optional[torch.Tensor],
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    num_rows, num_actions = mean.shape
    out_dtype = compute_dtype(mean, log_std, noise, old_mean, old_log_std, old_noise)
    grad_mean = torch.empty((num_rows, num_actions), dtype=mean.dtype, device=mean.device)
    grad_log_std = torch.empty((num_rows, num_actions), dtype=log_std.dtype, device=mean.device)
    old_ptrs, old_strides, num_samples = _old_args(mean, old_mean, old_log_std, old_noise)
    # Absent upstream gradients (unused outputs) skip their loads; `mean` stands in as the pointer.
    ga = mean if g_action is None else g_action
    glp = mean if g_log_prob is None else g_log_prob
    gkl = mean if g_kl is None else g_kl
    if num_rows == 0:
        return grad_mean, grad_log_std
    grid, block_b, block_a = _launch_config(num_rows, num_actions)
    _common.launch(
        _tanh_normal_bwd_kernel, grid,
        mean, log_std, noise, *old_ptrs, ga, glp, gkl, grad_mean, grad_log_std,
        num_rows, num_actions, num_samples,
        *mean.stride(), *log_std.stride(), *noise.stride(), *old_strides,
        *ga.stride()[-2:], glp.stride(0), gkl.stride(0),
        KL_MODE=_kl_mode(old_mean, old_noise), ACC=_common.acc_dtype(out_dtype),
        HAS_G_ACTION=g_action is not None, HAS_G_LOG_PROB=g_log_prob is not None,
        HAS_G_KL=g_kl is not None, BLOCK_B=block_b, BLOCK_A=block_a, num_warps=4)
    return grad_mean, grad_log_std


@_tanh_normal_bwd.register_fake
def _(mean, log_std, noise, old_mean, old_log_std, old_noise, g_action, g_log_prob, g_kl):
    contiguous = torch.contiguous_format
    return (torch.empty_like(mean, memory_format=contiguous),
            torch.empty_like(log_std, memory_format=contiguous))


def _setup_context(ctx, inputs, output):
    # Only the inputs are kept: the backward recomputes u, tanh(u) and the S samples' z in registers.
    # Unused outputs then pass None rather than a zeros tensor, and the kernel skips their loads.
    ctx.save_for_backward(*inputs)
    ctx.set_materialize_grads(False)


def _backward(ctx, g_action, g_log_prob, g_kl):
    mean, log_std, noise, old_mean, old_log_std, old_noise = ctx.saved_tensors
    grad_mean, grad_log_std = _tanh_normal_bwd(mean, log_std, noise, old_mean, old_log_std, old_noise,
                                               g_action, g_log_prob, g_kl)
    return grad_mean, grad_log_std, None, None, None, None


_tanh_normal_fwd.register_autograd(_backward, setup_context=_setup_context)


def tanh_normal(mean, log_std, noise, old_mean=None, old_log_std=None, old_noise=None) -> TanhNormalOut:
    """Reparameterised tanh-Gaussian sample, its log-prob and the forward KL from the old policy.

    Shapes: mean, log_std, noise, old_mean, old_log_std [B, A]; old_noise [S, B, A]; any strides.
    Leading dims other than one batch dim (e.g. [A] or [T, B, A]) are flattened into B and restored.
    Dtypes: float32 or bf16/f16 inputs are computed in float32 and give float32 outputs; float64
    inputs are computed and returned in float64 (as the reference). Gradients reach mean and
    log_std only, in their own dtypes.

        u        = mean + exp(log_std) * noise,   action = tanh(u)                          [B, A]
        log_prob = sum_A [ -noise^2/2 - log_std - log(2 pi)/2 - 2 (log 2 - u - softplus(-2u)) ]   [B]
        kl       = mean_j sum_A [ log N(u_j; old) - log N(u_j; new) ], u_j = old_mean + old_std eps_j
                   (old_noise given), else the exact Gaussian KL(pi_old || pi); None without old_mean.
    """
    if (old_mean is None) != (old_log_std is None):
        raise ValueError("old_mean and old_log_std must be given together")
    if old_noise is not None and old_mean is None:
        raise ValueError("old_noise needs old_mean and old_log_std")
    if old_noise is not None and old_noise.shape[1:] != mean.shape:
        raise ValueError(f"old_noise must be [S, *{tuple(mean.shape)}], got {tuple(old_noise.shape)}")
    # Frozen inputs are detached here, so no graph edge (and no wasted grad buffer) reaches them.
    frozen = [None if x is None else x.detach() for x in (noise, old_mean, old_log_std, old_noise)]
    lead, A = mean.shape[:-1], mean.shape[-1]
    if mean.dim() != 2:  # views where the strides allow, as the reference's dim=-1 semantics
        mean, log_std, *frozen[:3] = (None if x is None else x.reshape(-1, A)
                                      for x in (mean, log_std, *frozen[:3]))
        if frozen[3] is not None:
            frozen[3] = frozen[3].reshape(frozen[3].shape[0], -1, A)
    action, log_prob, kl = _tanh_normal_fwd(mean, log_std, *frozen)
    if len(lead) != 1:
        action, log_prob, kl = action.reshape(*lead, A), log_prob.reshape(lead), kl.reshape(lead)
    return TanhNormalOut(action, log_prob, None if old_mean is None else kl)

