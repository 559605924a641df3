"""reppo_fast: a lean, fast REPPO trainer (JAX and PyTorch paths, fused kernels)."""

__version__ = "0.1.0"
