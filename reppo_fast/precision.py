"""The networks' precision, one explicit choice on both frameworks (`--precision`, recorded in meta.json).

Left alone, the two paths differ on a GPU: JAX's default lets XLA run float32 matmuls in TF32 (10-bit
mantissa inputs, float32 accumulation) on Ampere and later, torch's default does not. The config field
makes the choice the same on both:

- `tf32`: float32 networks, their matmuls allowed to run in TF32 (JAX `tensorfloat32`, torch `high`): what
  the authors' JAX runs used, and the fast float32 setting.
- `float32`: full float32 matmuls (JAX `float32`, torch `highest`): for parity checks against float32
  references.
- `bf16`: every Linear of the networks (acting, bootstrap, update and evaluation alike) multiplies in
  bfloat16 through one helper, `dense` (on_jax/dense.py, on_torch/dense.py, same name and arguments):

      dense(x, w, b) = float32(round_bf16(sum_i round_bf16(x_i) * round_bf16(w_i))) + b

  x [..., I] and w [I, O] rounded to bfloat16 (8-bit mantissa, round to nearest even), the products
  (exact: 16 mantissa bits) summed in float32 in an unspecified order, the sum rounded once to bfloat16 and
  widened back, the float32 bias b added in float32. The rounded output is what a native bf16 GEMM
  returns (torch's bf16 `matmul` on CPU and CUDA; cuBLAS through XLA), so the fast path on a GPU is the
  definition, not an approximation of it; JAX asks for the float32 sum (`preferred_element_type`) and
  rounds it explicitly, since XLA may fold a bf16 dot's widening convert away. A compiler that fuses the
  rounding into the matmul's epilogue may keep the float32 sum instead (torch inductor's fused epilogues,
  unless `emulate_precision_casts`): at most half a bf16 ulp per layer, more precise, not less.
  Parameters and their gradients (the backward matmuls of dense are bf16 by the same rule), optimiser
  state, losses, normalisations, activations, the observation normaliser and the kernels' inputs stay
  float32.

On a CPU, `tf32` and `float32` both compute float32, and `bf16` computes the definition exactly (XLA:CPU
and torch's CPU matmul both take bf16 operands), so the learning-parity tests run on CPU
(tests/test_precision_learning.py). The physics is not the networks': the JAX env contract
(envs/contract_jax.py) keeps the precision JAX was configured with when the env was made (its default, or
the global `highest` mujoco_playground sets for long Swimmer chains), so this choice never changes the
simulation.

How each framework carries the choice:
- JAX: a trace-time context, `matmul_precision(precision)`, around the trainer's jitted functions; for
  `bf16` it is JAX's dot-algorithm preset `BF16_BF16_F32` (bf16 operands, float32 accumulation), which the
  networks' `linear` reads at trace time (`traced_precision`) to call `dense` with `bf16`: XLA:CPU ignores
  the preset, so the explicit casts are what make it hold on every backend.
- torch: each network module holds the choice (`precision`, given at construction from cfg.precision) and
  its Linear layers call `dense` with it; `set_matmul_precision` sets the process-wide float32 matmul
  precision and keeps cuBLAS's bf16 GEMMs accumulating in float32 throughout (torch's default allows
  bf16 partial sums in split-K reductions).
"""

from __future__ import annotations

import contextlib
import typing
from typing import Literal

Precision = Literal["tf32", "float32", "bf16"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
# JAX default_matmul_precision per choice: for bf16 the dot-algorithm preset naming the definition.
_JAX = {"tf32": "tensorfloat32", "float32": "float32", "bf16": "BF16_BF16_F32"}
# The choice back from a JAX setting; JAX's own names for the same precisions included. None (JAX's default)
# lets XLA use TF32 on GPUs.
_FROM_JAX = {None: "tf32", "tensorfloat32": "tf32", "high": "tf32", "float32": "float32",
             "highest": "float32", "F32_F32_F32": "float32", "BF16_BF16_F32": "bf16"}
# torch float32 matmul precision per choice: under bf16 the networks' matmuls are bf16 and every other
# float32 matmul stays full float32.
_TORCH = {"tf32": "high", "float32": "highest", "bf16": "highest"}
# The dtype the networks' matmuls take their operands in.
MATMUL_DTYPE = {"tf32": "float32", "float32": "float32", "bf16": "bfloat16"}


def set_matmul_precision(precision: str) -> None:
    """torch: this process's float32 matmuls at `precision`, and bf16 GEMMs accumulating in float32 (process-
    wide torch settings; the torch trainer sets them when built). Read at compile time by torch.compile, so
    set before compiling."""
    import torch

    torch.set_float32_matmul_precision(_TORCH[precision])
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False


def matmul_precision(precision: str) -> contextlib.AbstractContextManager:
    """JAX: a context under which traced matmuls run at `precision` (trace-time, so it covers every dot of a
    function jitted inside it; the networks' `linear` reads it through `traced_precision`)."""
    import jax

    return jax.default_matmul_precision(_JAX[precision])


def traced_precision() -> str:
    """JAX: the networks' precision of the function being traced, from JAX's default_matmul_precision (the
    context `matmul_precision` opens); outside any context JAX's default, `tf32`. Read at trace time, as JAX
    reads its own setting."""
    import jax

    setting = jax.config.jax_default_matmul_precision
    return _FROM_JAX.get(setting, "tf32")


def describe_torch(precision: str) -> dict:
    """The meta.json entry of the torch path: the choice and the torch settings that carry it."""
    import torch

    cuda_matmul = torch.backends.cuda.matmul
    return {"networks": precision, "matmul_dtype": MATMUL_DTYPE[precision],
            "torch_float32_matmul": torch.get_float32_matmul_precision(),
            "bf16_reduced_precision_reduction": cuda_matmul.allow_bf16_reduced_precision_reduction}


def describe_jax(precision: str, physics: str) -> dict:
    """The meta.json entry of the JAX path: the choice, the JAX setting that carries it and the physics'."""
    return {"networks": precision, "matmul_dtype": MATMUL_DTYPE[precision],
            "jax_default_matmul_precision": _JAX[precision], "physics": physics}
