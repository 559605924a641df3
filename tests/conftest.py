"""Test-session setup: the process environment (reppo_fast.process_env) before any test module imports
triton or jax. Without a GPU the Triton kernels run in Triton's interpreter.

Under pytest-xdist (the README's `-n 2`) each worker gets its share of the cores for torch: torch's OpenMP
threads spin while they wait. On 2 cores, an iteration of the torch `cpu` preset took 0.87 s with torch's
default 2 threads next to one busy core and 0.34 s with 1 thread, and in a CI run with both workers at
default threads the torch learning test took 4.7 s an iteration (2 s with this share). OMP_NUM_THREADS
carries the share to the processes tests start (torchrun ranks, spawned workers).

The runs tests start keep their compile caches (reppo_fast.compile_cache) under XDG_CACHE_HOME: it points
at a directory of this test process, removed at its end, so tests never write into the user's ~/.cache and
every session starts cold, as CI does. The processes tests start inherit it."""

import atexit
import os
import shutil
import tempfile

import pytest

from reppo_fast import process_env

process_env.configure(triton_interpreter_without_cuda=True)
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="reppo_fast-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)


def _share_the_cores_between_workers() -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


_share_the_cores_between_workers()


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
