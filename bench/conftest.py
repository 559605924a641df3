"""Bench-session setup: run options, and what must be set before torch, triton or jax start.

- torch's OpenMP threads spin while idle. Next to XLA's own CPU thread pool in the same process they
  fight for the cores: on a 2-core machine eager torch ops ran ~20x slower once JAX had initialised.
  Passive waiting (read when torch loads libgomp) removes that; set OMP_WAIT_POLICY to override.
- reppo_fast.process_env.configure (as tests/conftest.py): without CUDA the Triton kernels run in
  Triton's interpreter; JAX must not preallocate 75 % of a GPU that torch shares. It asks torch about
  CUDA, so it comes after OMP_WAIT_POLICY, and before anything imports triton or jax.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from reppo_fast import process_env  # noqa: E402

process_env.configure(triton_interpreter_without_cuda=True)

import pytest  # noqa: E402

from bench import selection  # noqa: E402
from bench.bandwidth import copy_bandwidth  # noqa: E402


def pytest_addoption(parser):
    group = parser.getgroup("reppo_fast bench")
    group.addoption("--bench-shapes", default="auto",
                    help="comma-separated rows of bench/shapes.py, 'all', or 'auto' (all on a GPU; small,dmc "
                         "on a CPU). Interpreted kernels run at 'small' only.")
    group.addoption("--bench-envs", default="auto",
                    help="comma-separated end-to-end envs (HumanoidRun, CartpoleBalance, ToyPointMass), "
                         "'all', or 'auto' (HumanoidRun,CartpoleBalance on a GPU; ToyPointMass on a CPU)")


def pytest_configure(config):
    try:
        selection.validate(config)
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None


@pytest.fixture(scope="session")
def copy_bw(request) -> dict | None:
    """The device's copy bandwidth, measured once per run (bench/bandwidth.py); None when nothing is timed
    (--benchmark-disable)."""
    if request.config.getoption("benchmark_disable"):
        return None
    return copy_bandwidth()
