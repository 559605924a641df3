"""Soft lambda-returns as one Triton kernel: a reverse loop over T, one program per block of envs.

Same public name, signature and semantics as `reference_torch.lambda_returns` (docs/algorithms.md section 4).
The reference launches a handful of kernels per step (T = 128: ~640 launches); here one launch reads every
input once and writes the returns once.

Layers (house style): `_lambda_returns_fwd_kernel` (the loop), `_launch` (grid, BLOCK_N, num_warps,
flag and stride handling), the custom op `reppo_fast::lambda_returns` (fake + autograd registrations)
and the public `lambda_returns` wrapper.
"""

import math

import torch
import triton
import triton.language as tl

from ..reference_torch._dtype import compute_dtype
from . import _common

__all__ = ["lambda_returns"]

# Envs per program, one column a thread (so at most 4 warps). The loop is latency-bound (T dependent
# steps), so more columns per program cost nothing; fewer programs keep the interpreter fast on CPU.
_MAX_LANES = 128


@triton.jit
def _lambda_returns_fwd_kernel(
    rewards_ptr,  # [T, N] fp32 / bf16 / fp16 / fp64, any strides
    next_values_ptr,  # [T, N] same choices, any strides
    terminated_ptr,  # [T, N] u8 (a bool tensor viewed as uint8) or any float/int dtype; nonzero = set
    truncated_ptr,  # [T, N] same choices as terminated_ptr
    returns_ptr,  # [T, N] fp32 or fp64, contiguous (row stride N): the accumulation dtype
    gamma: "fp64",  # fp64 so that a float64 run sees gamma exactly; rounded once to the output dtype
    lmbda: "fp64",
    num_steps,
    num_envs,
    rewards_stride_t,
    rewards_stride_n,
    next_values_stride_t,
    next_values_stride_n,
    terminated_stride_t,
    terminated_stride_n,
    truncated_stride_t,
    truncated_stride_n,
    BLOCK_N: tl.constexpr,
):
    """returns[t] = r_t + where(term_t, 0, gamma * where(trunc_t, V, lmbda G_{t+1} + (1 - lmbda) V)).

    V = next_values[t] and G_T := next_values[T-1]. Each program owns BLOCK_N env columns and walks
    t = T-1 .. 0 with G in registers; rows are contiguous along N, so every load/store is coalesced.
    Memory traffic: reads 4*T*N values (2 value tensors in their dtype, 2 flag tensors: 1 byte each
    when bool) and writes T*N values of the output dtype; no other global memory is touched.
    """
    pid = tl.program_id(0)
    offs_n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < num_envs
    ACC = returns_ptr.dtype.element_ty
    # Rounded once to the output dtype, as torch rounds a Python scalar; (1 - lmbda) is formed in fp64
    # first, like the reference's `1.0 - lmbda` on the host. tl.full rather than .to(): the interpreter
    # passes float args as Python floats, the compiler as fp64 scalars.
    one_minus_lmbda = tl.full([], 1.0 - lmbda, ACC)
    gamma = tl.full([], gamma, ACC)
    lmbda = tl.full([], lmbda, ACC)

    t = num_steps - 1
    reward = tl.load(rewards_ptr + t * rewards_stride_t + offs_n * rewards_stride_n, mask=mask_n, other=0)
    value = tl.load(next_values_ptr + t * next_values_stride_t + offs_n * next_values_stride_n,
                    mask=mask_n, other=0)
    reward = reward.to(ACC)
    value = value.to(ACC)
    term = tl.load(terminated_ptr + t * terminated_stride_t + offs_n * terminated_stride_n,
                   mask=mask_n, other=0) != 0
    trunc = tl.load(truncated_ptr + t * truncated_stride_t + offs_n * truncated_stride_n,
                    mask=mask_n, other=0) != 0
    ret = value  # G_T := V_T; then lmbda G_T + (1 - lmbda) V_T is just V_T: no input is mutated
    for step in range(num_steps):
        t = num_steps - 1 - step
        # Prefetch row t-1 before the dependent arithmetic of row t: its load latency overlaps this
        # step instead of stalling the next one (the loop is latency-bound, not bandwidth-bound).
        # Row -1 is never read: the mask is off for t = 0.
        prev = t - 1
        mask_prev = mask_n & (t > 0)
        next_reward = tl.load(rewards_ptr + prev * rewards_stride_t + offs_n * rewards_stride_n,
                              mask=mask_prev, other=0).to(ACC)
        next_value = tl.load(next_values_ptr + prev * next_values_stride_t + offs_n * next_values_stride_n,
                             mask=mask_prev, other=0).to(ACC)
        next_term = tl.load(terminated_ptr + prev * terminated_stride_t + offs_n * terminated_stride_n,
                            mask=mask_prev, other=0) != 0
        next_trunc = tl.load(truncated_ptr + prev * truncated_stride_t + offs_n * truncated_stride_n,
                             mask=mask_prev, other=0) != 0

        # The reference's operations in its order. Selects, not (1 - flag) factors: a NaN in a value
        # that is not used (V of a terminal step, G of the next episode) must not leak (NaN * 0 = NaN).
        mixed = lmbda * ret + one_minus_lmbda * value
        bootstrap = tl.where(trunc, value, mixed)
        ret = reward + tl.where(term, 0.0, gamma * bootstrap)
        tl.store(returns_ptr + t * num_envs + offs_n, ret, mask=mask_n)

        reward, value, term, trunc = next_reward, next_value, next_term, next_trunc


def _as_kernel_flag(flag: torch.Tensor) -> torch.Tensor:
    """Bool flags are reinterpreted as uint8 (a zero-copy view, any strides): Triton then loads one
    byte per element and tests != 0. Float/int flags go through unchanged (nonzero = set, like the
    reference's `flag != 0`, so NaN counts as set in both)."""
    return flag.view(torch.uint8) if flag.dtype == torch.bool else flag


def _as_2d(x: torch.Tensor) -> torch.Tensor:
    """[T] -> [T, 1] and [T, *rest] -> [T, prod(rest)] (a view whenever strides allow, else a copy);
    the reference accepts any [T, ...] shape."""
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def _launch(rewards, next_values, terminated, truncated, gamma: float, lmbda: float) -> torch.Tensor:
    """Allocate the output and launch the kernel; no host sync, no data-dependent shapes.

    Strided inputs are read in place (the kernel takes per-tensor strides): a .contiguous() copy of a
    transposed tensor would cost another read and write of it, more than the strided loads.
    Offsets are int32: each input may hold up to 2^31 elements (T*N = 128*1024 in the DMC config).
    """
    shape = rewards.shape
    out_dtype = compute_dtype(rewards, next_values)
    rewards, next_values = _as_2d(rewards), _as_2d(next_values)
    terminated, truncated = _as_2d(_as_kernel_flag(terminated)), _as_2d(_as_kernel_flag(truncated))
    num_steps, num_envs = rewards.shape
    returns = torch.empty((num_steps, num_envs), dtype=out_dtype, device=rewards.device)
    if num_envs == 0:
        return returns.reshape(shape)
    block_n = _common.block_size(num_envs, 1, _MAX_LANES)
    _common.launch(
        _lambda_returns_fwd_kernel, _common.grid_over(num_envs, block_n),
        rewards, next_values, terminated, truncated, returns,
        float(gamma), float(lmbda), num_steps, num_envs,
        rewards.stride(0), rewards.stride(1), next_values.stride(0), next_values.stride(1),
        terminated.stride(0), terminated.stride(1), truncated.stride(0), truncated.stride(1),
        BLOCK_N=block_n, num_warps=_common.num_warps(block_n, lanes_per_thread=1, min_warps=1))
    return returns.reshape(shape)


@torch.library.custom_op("reppo_fast::lambda_returns", mutates_args=())
def _lambda_returns_op(rewards: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
                       truncated: torch.Tensor, gamma: float, lmbda: float) -> torch.Tensor:
    return _launch(rewards, next_values, terminated, truncated, gamma, lmbda)


@_lambda_returns_op.register_fake
def _(rewards, next_values, terminated, truncated, gamma, lmbda):
    return rewards.new_empty(rewards.shape, dtype=compute_dtype(rewards, next_values))


def _setup_context(ctx, inputs, output):
    # Returns are targets: like the reference (@torch.no_grad), they never carry a gradient, even
    # when an input requires one.
    ctx.mark_non_differentiable(output)


def _backward(ctx, grad_returns):
    return None, None, None, None, None, None


_lambda_returns_op.register_autograd(_backward, setup_context=_setup_context)


def lambda_returns(rewards, next_values, terminated, truncated, *, gamma, lmbda) -> torch.Tensor:
    """Lambda-returns [T, N] of a rollout; every input is [T, N] (any [T, ...] shape works).

    rewards r_t (the soft rewards), next_values V_{t+1} = next_values[t], terminated/truncated bool or
    any float/int dtype (nonzero = set). With G_T := V_T:

        G_t = r_t + gamma (1 - terminated_t) [ truncated_t V_{t+1}
                                               + (1 - truncated_t) (lmbda G_{t+1} + (1 - lmbda) V_{t+1}) ]

    Terminated wins over truncated; a truncated step bootstraps from its own V_{t+1}. No gradient;
    inputs are never mutated; inputs may be non-contiguous. Dtype: accumulates and returns float64
    for float64 inputs, else float32 (bf16/f16 inputs are widened on load).
    """
    if not rewards.shape == next_values.shape == terminated.shape == truncated.shape:
        raise ValueError("rewards, next_values, terminated and truncated must share one [T, N] shape")
    if rewards.dim() == 0 or rewards.shape[0] == 0:
        raise ValueError("lambda_returns needs T >= 1")
    return _lambda_returns_op(rewards, next_values, terminated, truncated, float(gamma), float(lmbda))

