"""Test-session setup: the process environment (reppo_fast.process_env) before any test module imports
triton or jax. Without a GPU the Triton kernels run in Triton's interpreter."""

import pytest

from reppo_fast import process_env

process_env.configure(triton_interpreter_without_cuda=True)


@pytest.fixture
def float32_matmuls():
    """Full float32 matmuls on both frameworks while the test runs: the framework-parity tests compare two
    float32 computations, which on a GPU would otherwise differ by JAX's default TF32
    (reppo_fast.precision)."""
    import torch

    from reppo_fast.precision import matmul_precision, set_matmul_precision

    before = torch.get_float32_matmul_precision()
    set_matmul_precision("float32")
    try:
        with matmul_precision("float32"):
            yield
    finally:
        torch.set_float32_matmul_precision(before)
