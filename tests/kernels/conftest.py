"""Fixtures shared by the kernel tests: the accuracy bar, and ahead-of-time compilation of Triton kernels."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

# float32 is the compute dtype of every kernel for float32, bf16 and f16 inputs (float64 inputs are
# checked against the reference directly, not with the bar).
_EPS32 = float(np.finfo(np.float32).eps)


def _float64(x) -> np.ndarray:
    """A torch tensor (any device, dtype) or a numpy/JAX array as a float64 numpy array."""
    if hasattr(x, "detach"):
        return x.detach().double().cpu().numpy()
    return np.asarray(x, np.float64)


def _assert_within_bar(got, reference, gold, *, floor_ulps: float, name: str = "") -> None:
    """max|got - gold| <= 2 max|reference - gold| + floor_ulps * eps32 * (1 + max|gold|).

    The bar (flash-attention style): the kernel's error against the float64 gold is at most twice the
    plain framework reference's error in the same dtype, on the same device (so on CUDA the reference
    uses CUDA's math too). `gold` must be computed from the very inputs the kernel saw (bf16-rounded
    ones included), or the bar would measure the input rounding.

    The floor, a few float32 ulps of the gold's magnitude: the reference's error can be zero by luck
    (one element; a result it happens to round exactly), and a kernel that rounds as well but
    differently (another summation order, a contracted FMA) is then an ulp off. The magnitude is
    1 + |gold| because a small result of O(1) terms that cancel is only defined to an ulp of 1.
    """
    got, reference, gold = _float64(got), _float64(reference), _float64(gold)
    assert got.shape == gold.shape == reference.shape, (name, got.shape, reference.shape, gold.shape)
    err = np.abs(got - gold).max()
    ref_err = np.abs(reference - gold).max()
    floor = floor_ulps * _EPS32 * (1.0 + np.abs(gold).max())
    assert err <= 2.0 * ref_err + floor, (
        f"{name}: kernel error {err:.3g} > 2 x reference error {ref_err:.3g} + floor {floor:.3g}")


@pytest.fixture(scope="session")
def assert_within_bar():
    """The accuracy bar, `assert_within_bar(got, reference, gold, *, floor_ulps, name="")`."""
    return _assert_within_bar


# Run as `python -c _AOT_SCRIPT module needle`; prints the compiled kernels' names as JSON.
_AOT_SCRIPT = """
import importlib, json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

module, needle = importlib.import_module(sys.argv[1]), sys.argv[2]
names = []
for fn, signature, constexprs in module.AOT_SPECS:
    compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                              target=GPUTarget("cuda", 90, 32))
    assert needle in compiled.asm["ptx"], (fn.fn.__name__, signature, constexprs)
    names.append(fn.fn.__name__)
print(json.dumps(names))
"""


def _compile_aot_specs(module: str, ptx_must_contain: str = "ld.global") -> list[str]:
    """Compile every (kernel, signature, constexprs) of `module`.AOT_SPECS for sm_90; the kernels' names,
    one per spec. Each PTX must contain `ptx_must_contain`.

    In a fresh interpreter without TRITON_INTERPRET, never in the test process: once interpreted kernels
    with @triton.jit helpers have run, triton.language's builtins (tl.arange, ...) stay patched with
    the interpreter's versions, and the compiler's front end then fails on a fresh Triton cache
    ("'ir.value' object has no attribute 'dtype'" at tl.arange); a warm cache hid it. Under
    TRITON_INTERPRET=1 @triton.jit also returns kernels that triton.compile cannot take."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", _AOT_SCRIPT, module, ptx_must_contain], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="session")
def compile_aot_specs():
    """`compile_aot_specs(module, ptx_must_contain="ld.global") -> kernel names`: AOT_SPECS compiled for
    sm_90 in a subprocess (see `_compile_aot_specs`)."""
    return _compile_aot_specs
