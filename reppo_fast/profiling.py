"""NVTX ranges around the training phases, for Nsight (see profiles/README.md for the recipes).

`Ranges(enabled)` is called with a range name and returns a context manager. Off (the default), it hands
back one shared `nullcontext`: no allocation and no library call, so the instrumented code pays nothing.
On (`--profile`), a range is pushed through the `nvtx` package (the `profile` extra), which works on
any build; without it, through `torch.cuda.nvtx` when torch has CUDA (CPU builds of torch raise there).
The JAX path also opens a `jax.profiler.TraceAnnotation` so the JAX profiler shows the same host ranges;
inside jit, the phases are `jax.named_scope`s, which XLA turns into NVTX ranges on GPU.

Range names (one vocabulary with the JAX scopes): rollout, returns, update, update/critic,
update/actor, eval, op/<name> around each hot op, and capture (every iteration after the warm-up, the
window to hand to `nsys --capture-range=nvtx`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import warnings
from collections.abc import Callable, Iterator

PHASES = ("rollout", "returns", "update", "update/critic", "update/actor", "eval")
CAPTURE = "capture"
_OFF = contextlib.nullcontext()


def _nvtx_backend() -> tuple[Callable[[str], None], Callable[[], None]] | None:
    """(push, pop) of the first NVTX binding that works here, or None."""
    if importlib.util.find_spec("nvtx") is not None:
        import nvtx

        return nvtx.push_range, nvtx.pop_range
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.nvtx.range_push, torch.cuda.nvtx.range_pop
    return None


class Ranges:
    """Named profiling ranges; `ranges("rollout")` is a context manager. Zero cost when disabled."""

    def __init__(self, enabled: bool = False, jax_annotations: bool = False, torch_annotations: bool = False):
        """jax_annotations: also a jax.profiler.TraceAnnotation per range; torch_annotations: also a
        torch.profiler.record_function, so torch.profiler (reppo_fast.profile_run) sees the ranges."""
        self.enabled = enabled
        self._nvtx = _nvtx_backend() if enabled else None
        if enabled and self._nvtx is None and not jax_annotations:
            warnings.warn("--profile: no NVTX library here, so no ranges are emitted; "
                          "install the `nvtx` package (pip install 'reppo-fast[profile]')", stacklevel=2)
        self._trace = None
        if enabled and jax_annotations:
            import jax

            self._trace = jax.profiler.TraceAnnotation
        elif enabled and torch_annotations:
            import torch

            self._trace = torch.profiler.record_function

    def __call__(self, name: str):
        if not self.enabled:
            return _OFF
        return self._range(name)

    @contextlib.contextmanager
    def _range(self, name: str) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if self._trace is not None:
                stack.enter_context(self._trace(name))
            if self._nvtx is not None:
                push, pop = self._nvtx
                push(name)
                stack.callback(pop)
            yield


NO_RANGES = Ranges(False)


def instrument_kernels(kernels, scope: Callable[[str], contextlib.AbstractContextManager] | None):
    """The KernelSet with each op wrapped in `scope(f"op/{name}")`; `kernels` itself for scope None.

    scope is a `Ranges` for eager torch code and `jax.named_scope` inside jit (which names the op's XLA
    ops, and so its NVTX range on GPU)."""
    if scope is None:
        return kernels
    names = ("tanh_normal", "hl_gauss_ce", "hl_gauss_decode", "hl_gauss_hist", "lambda_returns")

    def wrap(name, fn):
        @functools.wraps(fn)
        def ranged(*args, **kwargs):
            with scope(f"op/{name}"):
                return fn(*args, **kwargs)
        return ranged

    return dataclasses.replace(kernels, **{n: wrap(n, getattr(kernels, n)) for n in names})
