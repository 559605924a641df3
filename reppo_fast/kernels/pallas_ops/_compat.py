"""Every version-fragile Pallas import and setting, in one place (jax 0.10.x on Python 3.11 here; 0.11.x on
GPU images, where the Triton lowering is deprecated but still present).

GPU backend choice: the Triton lowering. The default Mosaic GPU lowering was seen to reject these kernels
(strides that are not multiples of 16, row reductions); Triton needs power-of-two block shapes, so
kernels pad (K = 151 -> 256) and mask.
"""

from __future__ import annotations

import contextlib

import jax
from jax.experimental import pallas as pl

try:  # jax >= 0.5: the Triton backend's parameters live in pallas.triton
    from jax.experimental.pallas import triton as _pl_triton
except ImportError as err:  # pragma: no cover - depends on the installed jax
    raise ImportError(f"this jax ({jax.__version__}) has no Pallas Triton backend: {err}") from err

GPU_BACKEND = "triton"


def compiler_params(num_warps: int = 4, num_stages: int = 1):
    """Explicit compiler parameters for the GPU (Triton) lowering."""
    return _pl_triton.CompilerParams(num_warps=num_warps, num_stages=num_stages)


def interpret_default() -> bool:
    """Interpret (run the kernel body as plain JAX) unless the default backend is a GPU."""
    return jax.default_backend() not in ("gpu", "cuda", "rocm")


def abstract_gpu(device_kind: str = "NVIDIA H100"):
    """A context in which the Triton lowering targets `device_kind` without a local GPU. jax 0.11's
    lowering asks the abstract mesh's device for the GPU (and fails on a CPU-only jaxlib without one);
    jax 0.10's targets a default and ignores it."""
    sharding = jax.sharding
    if not hasattr(sharding, "AbstractDevice") or not hasattr(sharding, "use_abstract_mesh"):
        return contextlib.nullcontext()
    device = sharding.AbstractDevice(device_kind=device_kind, num_cores=None, platform="gpu")
    return sharding.use_abstract_mesh(sharding.AbstractMesh((1,), ("x",), abstract_device=device))


def lower_for_cuda(fn, *avals, device_kind: str = "NVIDIA H100") -> str:
    """StableHLO text of jax.jit(fn) at `avals` lowered for CUDA, on any machine (no GPU needed)."""
    with abstract_gpu(device_kind):
        return jax.jit(fn).trace(*avals).lower(lowering_platforms=("cuda",)).as_text()


__all__ = ["pl", "compiler_params", "interpret_default", "GPU_BACKEND", "abstract_gpu", "lower_for_cuda"]
