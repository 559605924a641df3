"""`dense` and `Dense`: the networks' one matmul, at the run's precision (reppo_fast.precision has the
definition).

The JAX twin is on_jax/dense.py (same name, arguments and result). `Dense` is an nn.Linear (same parameters
and state_dict keys, nn.Linear's [O, I] weight) that holds the run's precision and applies `dense`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def dense(x, w, b, precision: str):
    """x [..., I] @ w [I, O] + b [O] -> [..., O] float32; or stacked, x [C, N, I] @ w [C, I, O] + b [C, 1, O].

    `bf16`: float32(round_bf16(round_bf16(x) @ round_bf16(w))) + b: torch's bf16 matmul sums the products in
    float32 and returns the sum rounded to bfloat16 (cuBLAS with bf16 reduced-precision reductions off,
    reppo_fast.precision.set_matmul_precision); its backward matmuls follow the same rule. Otherwise a
    float32 matmul at torch's float32 matmul precision (`tf32` or `float32`), through the fused bias
    kernels nn.Linear and the stacked critics used before.
    """
    if precision == "bf16":
        return torch.matmul(x.bfloat16(), w.bfloat16()).float() + b
    if w.dim() == 3:
        return torch.baddbmm(b, x, w)
    return F.linear(x, w.T, b)


class Dense(nn.Linear):
    """nn.Linear applying `dense` at `precision` (a reppo_fast.precision choice)."""

    def __init__(self, fan_in: int, fan_out: int, precision: str = "tf32"):
        super().__init__(fan_in, fan_out)
        self.precision = precision

    def forward(self, x):
        return dense(x, self.weight.T, self.bias, self.precision)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, precision={self.precision}"
