"""`dense`: the networks' one matmul, at the run's precision (reppo_fast.precision has the definition).

The torch twin is on_torch/dense.py (same name, arguments and result).
"""

from __future__ import annotations

import jax.numpy as jnp


def dense(x, w, b, precision: str):
    """x [..., I] @ w [I, O] + b [O] -> [..., O] float32.

    `bf16`: float32(round_bf16(round_bf16(x) @ round_bf16(w))) + b, the products summed in float32
    (preferred_element_type) and the sum rounded to bfloat16 once, as a native bf16 GEMM returns it; the
    backward matmuls follow the same rule (the cotangent rounded to bfloat16 by the transpose of the
    rounding, each sum rounded again). The rounding is explicit because XLA may fold a bf16 -> bf16 dot's
    widening convert into the dot and return the unrounded float32 sum. Otherwise a float32 matmul at the
    traced default precision (`tf32` or `float32`, the context reppo_fast.precision.matmul_precision opens).
    """
    if precision != "bf16":
        return x @ w + b
    y = jnp.matmul(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), preferred_element_type=jnp.float32)
    return y.astype(jnp.bfloat16).astype(jnp.float32) + b
