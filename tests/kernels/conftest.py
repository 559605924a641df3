"""Fixtures shared by the kernel tests: the accuracy bar, ahead-of-time compilation of the Triton kernels and
the CUDA cross-lowering of the Pallas ones."""

import contextlib
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


# Run as `python -c _AOT_SCRIPT` with {"module", "specs", "needle"} as JSON on stdin; prints the compiled
# kernels' names as JSON. A constexpr given as a string names a triton.language dtype (ACC: "float32").
_AOT_SCRIPT = """
import importlib, json, sys
import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

request = json.load(sys.stdin)
module = importlib.import_module(request["module"])
names = []
for kernel, signature, constexprs in request["specs"]:
    fn = getattr(module, kernel)
    constexprs = {k: getattr(tl, v) if isinstance(v, str) else v for k, v in constexprs.items()}
    compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                              target=GPUTarget("cuda", 90, 32))
    assert request["needle"] in compiled.asm["ptx"], (kernel, signature, constexprs)
    names.append(fn.fn.__name__)
print(json.dumps(names))
"""


def _compile_aot_specs(module: str, specs: list, ptx_must_contain: str = "ld.global") -> list[str]:
    """Compile every (kernel name, signature, constexprs) of `specs`, kernels of `module`, for sm_90; the
    kernels' names, one per spec. Each PTX must contain `ptx_must_contain`. The specs live in the test
    files (test_triton_*.py), not in the library.

    In a fresh interpreter without TRITON_INTERPRET, never in the test process: once interpreted kernels
    with @triton.jit helpers have run, triton.language's builtins (tl.arange, ...) stay patched with
    the interpreter's versions, and the compiler's front end then fails on a fresh Triton cache
    ("'ir.value' object has no attribute 'dtype'" at tl.arange); a warm cache hid it. Under
    TRITON_INTERPRET=1 @triton.jit also returns kernels that triton.compile cannot take. Hence the specs
    travel as JSON and name their kernels."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    request = json.dumps({"module": module, "specs": specs, "needle": ptx_must_contain})
    done = subprocess.run([sys.executable, "-c", _AOT_SCRIPT], input=request, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="session")
def compile_aot_specs():
    """`compile_aot_specs(module, specs, ptx_must_contain="ld.global") -> kernel names`: `specs` compiled
    for sm_90 in a subprocess (see `_compile_aot_specs`)."""
    return _compile_aot_specs


def _abstract_gpu(device_kind: str):
    """A context in which the Pallas Triton lowering targets `device_kind` without a local GPU. jax 0.11's
    lowering asks the abstract mesh's device for the GPU (and fails on a CPU-only jaxlib without one);
    jax 0.10's targets a default and ignores it."""
    import jax

    sharding = jax.sharding
    if not hasattr(sharding, "AbstractDevice") or not hasattr(sharding, "use_abstract_mesh"):
        return contextlib.nullcontext()
    device = sharding.AbstractDevice(device_kind=device_kind, num_cores=None, platform="gpu")
    return sharding.use_abstract_mesh(sharding.AbstractMesh((1,), ("x",), abstract_device=device))


def _lower_for_cuda(fn, *avals, device_kind: str = "NVIDIA H100") -> str:
    """StableHLO text of jax.jit(fn) at `avals` lowered for CUDA, on any machine (no GPU needed)."""
    import jax

    with _abstract_gpu(device_kind):
        return jax.jit(fn).trace(*avals).lower(lowering_platforms=("cuda",)).as_text()


@pytest.fixture(scope="session")
def lower_for_cuda():
    """`lower_for_cuda(fn, *avals, device_kind="NVIDIA H100") -> StableHLO text`: the Pallas kernels'
    CUDA lowering (call the ops with interpret=False), on a CPU-only jaxlib of jax 0.10 or 0.11."""
    return _lower_for_cuda
