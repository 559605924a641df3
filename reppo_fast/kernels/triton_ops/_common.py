"""What every Triton launcher and kernel shares: the device guard, the launch shape, the compute dtype and the
bf16 store rounding; and the names all three kernels use.

Names. An axis is called by its letter in the op contract (reppo_fast/kernels/__init__.py): B rows,
A actions, S samples (old_noise draws), K bins, T steps, N envs. A kernel takes a size as `num_<axis>`
(num_rows, num_actions, num_samples, num_bins, num_steps, num_envs), a stride as `<tensor>_stride_<letter>`
(mean_stride_b, old_noise_stride_s, logits_stride_k, rewards_stride_t), a block size as the constexpr
`BLOCK_<LETTER>`, and computes in `ACC` (float32, or float64 for float64 inputs). Pointers end in `_ptr`.
"""

import contextlib

import torch
import triton
import triton.language as tl


def on_device(x: torch.Tensor):
    """A context in which a Triton launch runs on `x`'s GPU.

    Triton launches on the *current* CUDA device, not on the device of the tensors it is given: with
    tensors on cuda:1 and cuda:0 current, the kernel would run on GPU 0 and dereference GPU 1 pointers.
    On CPU tensors (Triton's interpreter) there is no device to enter."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def launch(kernel, grid: tuple[int, ...], *args, **meta) -> None:
    """`kernel[grid](*args, **meta)` on the device of `args[0]`, a tensor (see `on_device`). Every launcher
    goes through here, so none can leave the guard out."""
    with on_device(args[0]):
        kernel[grid](*args, **meta)


def block_size(count: int, lanes_each: int, max_lanes: int) -> int:
    """How many of `count` items (rows of a [B, A] or [B, K] block, envs of [T, N]) one program takes.

    A power of two (Triton's blocks are), as many as fit in `max_lanes` at `lanes_each` lanes per item
    (one at least), and no more than `count` needs: a small batch is one program, which also keeps the
    CPU interpreter fast."""
    return min(triton.next_power_of_2(max(count, 1)), max(1, max_lanes // lanes_each))


def grid_over(count: int, block: int) -> tuple[int]:
    """The 1-D grid: one program per `block` items, the last one masked."""
    return (triton.cdiv(count, block),)


def num_warps(lanes: int, lanes_per_thread: int, min_warps: int, max_warps: int = 16) -> int:
    """Warps for a block of `lanes`: one thread per `lanes_per_thread` lanes (32 threads a warp), clamped
    to [min_warps, max_warps]."""
    return min(max_warps, max(min_warps, lanes // (32 * lanes_per_thread)))


def acc_dtype(dtype: torch.dtype):
    """ACC for a torch compute dtype (reference_torch._dtype.compute_dtype): float64 stays, all else is
    float32."""
    return tl.float64 if dtype == torch.float64 else tl.float32


@triton.jit
def round_for_store(x, ptr):
    """x as a store to `ptr` rounds it on the GPU: to nearest even when `ptr` holds bf16 (else unchanged).

    The GPU's float32 -> bf16 store rounds to nearest even; Triton's interpreter truncates. Rounding the
    float32 bits first (add 0x7FFF plus the lowest kept bit, clear the low half) makes both agree: the
    store's cast is then exact. Inf stays Inf (and a finite value past the largest bf16 rounds to it);
    NaN is passed through as it is, since the carry could turn a NaN's payload into Inf or -0.
    """
    if ptr.dtype.element_ty == tl.bfloat16:
        x32 = x.to(tl.float32)
        bits = x32.to(tl.uint32, bitcast=True)
        bits = (bits + (0x7FFF + ((bits >> 16) & 1))) & 0xFFFF0000
        x = tl.where(x32 == x32, bits.to(tl.float32, bitcast=True), x32)
    return x
