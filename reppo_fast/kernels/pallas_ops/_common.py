"""What the three Pallas ops share: the `interpret` choice, the block shape, padding and the one way they
call `pl.pallas_call`. Version-fragile imports stay in `_compat.py`.

`interpret` is one keyword of every public op, `interpret: bool | None = None`. None decides when the op
is called (or traced): interpret, i.e. run the kernel body as plain JAX, unless JAX's default backend is
a GPU; True or False force it. The op then hands a plain bool down as a static value (a jit static
argument, or a field of the hashable configuration a custom_vjp takes as its nondiff argument) to every
pallas_call; no module state is read.

Names as in triton_ops/_common.py: sizes `num_<axis>` (num_rows, num_actions, num_bins, num_steps,
num_envs), block sizes `block_<letter>` (block_b, block_a, block_k, block_n), and `padded_<axis>` for a
size rounded up to whole blocks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._compat import compiler_params, pl


def resolve_interpret(interpret: bool | None) -> bool:
    """The static `interpret` of a call: as given, or (None) True unless JAX's default backend is a GPU."""
    if interpret is None:
        return jax.default_backend() not in ("gpu", "cuda", "rocm")
    return bool(interpret)


def next_pow2(n: int) -> int:
    """The least power of two >= max(n, 1): the Triton lowering needs power-of-two block shapes."""
    return 1 << max(n - 1, 0).bit_length()


def block_size(count: int, lanes_each: int, max_lanes: int) -> int:
    """How many of `count` items (rows of a [B, A] or [B, K] block, envs of [T, N]) one program takes:
    a power of two, as many as fit in `max_lanes` at `lanes_each` lanes per item (one at least), and
    no more than `count` needs (a small batch is one program, which keeps interpret mode fast)."""
    return min(next_pow2(count), max(1, max_lanes // lanes_each))


def round_up(count: int, block: int) -> int:
    """`count` rounded up to whole blocks: the Triton lowering does not mask partial blocks, so inputs
    are padded to it and outputs sliced back."""
    return -(-count // block) * block


def num_warps(lanes: int, lanes_per_thread: int, min_warps: int, max_warps: int = 16) -> int:
    """Warps for a block of `lanes`: one thread per `lanes_per_thread` lanes (32 threads a warp), clamped
    to [min_warps, max_warps]."""
    return min(max_warps, max(min_warps, lanes // (32 * lanes_per_thread)))


def pad_to(x: jax.Array, shape: tuple[int, ...], fill=0) -> jax.Array:
    """`x` padded at the end of each axis to `shape` with `fill` (unchanged where no axis grows)."""
    widths = [(0, size - current) for size, current in zip(shape, x.shape)]
    if all(high == 0 for _, high in widths):
        return x
    return jnp.pad(x, widths, constant_values=fill)


def launch(kernel, *args, grid, in_specs, out_specs, out_shape, interpret: bool, num_warps: int):
    """`pl.pallas_call(kernel, ...)(*args)` with the Triton lowering's parameters (`_compat.compiler_params`)
    and a static `interpret` (see `resolve_interpret`)."""
    return pl.pallas_call(
        kernel, out_shape=out_shape, grid=grid, in_specs=in_specs, out_specs=out_specs,
        interpret=interpret, compiler_params=compiler_params(num_warps=num_warps),
    )(*args)
