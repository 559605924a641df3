"""Per-op benchmarks: every op, forward and forward+backward, at every shape, against every baseline.

torch: eager reference, torch.compile of it, the compiled reference under a CUDA graph, Triton, Triton under
a CUDA graph. JAX: the jitted reference (XLA) and Pallas. Each case first checks its outputs and gradients
against the float64 reference on the same inputs.
"""

import pytest

from bench import variants_jax, variants_torch
from bench.op_case import run_op_case
from bench.op_data import CASES
from bench.shapes import SHAPES

VARIANTS = variants_torch.VARIANTS + variants_jax.VARIANTS
# Grouped by (op, mode, shape) so that the float64 gold is computed once for all variants of a group.
PARAMS = [(op, mode, shape, variant) for op, mode in CASES for shape in SHAPES for variant in VARIANTS]


@pytest.mark.parametrize("op,mode,shape,variant", PARAMS, ids=["-".join(p) for p in PARAMS])
def test_op(benchmark, request, copy_bw, op, mode, shape, variant):
    run_op_case(benchmark, request.config, copy_bw, op, mode, shape, variant)
