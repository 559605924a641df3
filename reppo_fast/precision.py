"""The networks' float32 matmul precision, chosen explicitly on both frameworks (`--matmul-precision`).

Left alone, the two paths differ on a GPU: JAX's default lets XLA run float32 matmuls in TF32 (10-bit
mantissa inputs, float32 accumulation) on Ampere and later, torch's default does not. The config field
makes the choice the same on both and is recorded in meta.json:

- `tf32`: TF32 allowed for the networks' float32 matmuls (JAX `tensorfloat32`, torch `high`): what the
  authors' JAX runs used, and the fast setting.
- `float32`: full float32 matmuls (JAX `float32`, torch `highest`): for parity checks against float32
  references.

On a CPU both settings compute in float32. The physics is not the networks': the JAX env contract
(envs/contract_jax.py) keeps the precision JAX was configured with when the env was made (its default, or the
global `highest` mujoco_playground sets for long Swimmer chains), so this choice never changes the
simulation.
"""

from __future__ import annotations

import contextlib
from typing import Literal

MatmulPrecision = Literal["tf32", "float32"]
_JAX = {"tf32": "tensorfloat32", "float32": "float32"}
_TORCH = {"tf32": "high", "float32": "highest"}


def set_matmul_precision(precision: str) -> None:
    """torch: float32 matmuls of this process at `precision` (a process-wide torch setting; the torch
    trainer sets it when built). Read at compile time by torch.compile, so set before compiling."""
    import torch

    torch.set_float32_matmul_precision(_TORCH[precision])


def matmul_precision(precision: str) -> contextlib.AbstractContextManager:
    """JAX: a context under which traced float32 matmuls run at `precision` (trace-time, so it covers
    every dot of a function jitted inside it)."""
    import jax

    return jax.default_matmul_precision(_JAX[precision])

