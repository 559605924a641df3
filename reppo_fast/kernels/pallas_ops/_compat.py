"""Every version-fragile Pallas import and setting, in one place (jax 0.10.x on Python 3.11 here; 0.11.x on
GPU images, where the Triton lowering is deprecated but still present).

GPU backend choice: the Triton lowering. The default Mosaic GPU lowering was seen to reject these kernels
(strides that are not multiples of 16, row reductions); Triton needs power-of-two block shapes, so
kernels pad (K = 151 -> 256) and mask. The CUDA cross-lowering the tests run on a CPU-only jaxlib (an
abstract H100) lives with them, in tests/kernels/conftest.py.
"""

from __future__ import annotations

import jax
from jax.experimental import pallas as pl

try:  # jax >= 0.5: the Triton backend's parameters live in pallas.triton
    from jax.experimental.pallas import triton as _pl_triton
except ImportError as err:  # pragma: no cover - depends on the installed jax
    raise ImportError(f"this jax ({jax.__version__}) has no Pallas Triton backend: {err}") from err

def compiler_params(num_warps: int = 4, num_stages: int = 1):
    """Explicit compiler parameters for the GPU (Triton) lowering."""
    return _pl_triton.CompilerParams(num_warps=num_warps, num_stages=num_stages)


__all__ = ["pl", "compiler_params"]
