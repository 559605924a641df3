"""The explicit kernel binding: which implementation of each op a trainer gets.

`bind(framework, backend, overrides, shapes)` imports the chosen modules (lazily, so importing this file
loads neither torch nor jax) and returns a `KernelSet` of plain functions plus `bound`, the backend
actually used per op, and `reasons`, why, which the trainer records in its run metadata. "auto" binds
what the last GPU benchmark report measured fastest at `shapes` (`fastest.py`), the reference otherwise.
A requested backend that is missing or fails to import raises `KernelUnavailableError`: there is no
silent fallback and no environment-variable switch.
"""

import importlib
import importlib.util
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

# The choices are config values: their tables live with the config (which imports nothing heavy), and
# validate_choice is the one check of them, for the config and for `bind` alike. BACKENDS and FRAMEWORKS
# are re-exported by the package.
from reppo_fast.config import BACKENDS, FRAMEWORKS, OPS, validate_choice  # noqa: F401
from reppo_fast.kernels import fastest
from reppo_fast.kernels.fastest import op_shapes  # noqa: F401  (the shapes `bind` takes, from a Config)

logger = logging.getLogger(__name__)

_OP_FUNCTIONS = {
    "tanh_normal": ("tanh_normal",),
    "hl_gauss_ce": ("hl_gauss_ce", "hl_gauss_decode", "hl_gauss_hist"),
    "lambda_returns": ("lambda_returns",),
}

# (framework, backend, op) -> module. A fused kernel is enabled by adding its rows here.
_MODULES = {
    ("jax", "reference", "tanh_normal"): "reppo_fast.kernels.reference_jax.tanh_normal",
    ("jax", "reference", "hl_gauss_ce"): "reppo_fast.kernels.reference_jax.hl_gauss_ce",
    ("jax", "reference", "lambda_returns"): "reppo_fast.kernels.reference_jax.lambda_returns",
    ("torch", "reference", "tanh_normal"): "reppo_fast.kernels.reference_torch.tanh_normal",
    ("torch", "reference", "hl_gauss_ce"): "reppo_fast.kernels.reference_torch.hl_gauss_ce",
    ("torch", "reference", "lambda_returns"): "reppo_fast.kernels.reference_torch.lambda_returns",
    ("jax", "pallas", "tanh_normal"): "reppo_fast.kernels.pallas_ops.tanh_normal",
    ("jax", "pallas", "hl_gauss_ce"): "reppo_fast.kernels.pallas_ops.hl_gauss_ce",
    ("jax", "pallas", "lambda_returns"): "reppo_fast.kernels.pallas_ops.lambda_returns",
    ("torch", "triton", "tanh_normal"): "reppo_fast.kernels.triton_ops.tanh_normal",
    ("torch", "triton", "hl_gauss_ce"): "reppo_fast.kernels.triton_ops.hl_gauss_ce",
    ("torch", "triton", "lambda_returns"): "reppo_fast.kernels.triton_ops.lambda_returns",
}
_NOT_BUILT = {
}


class KernelUnavailableError(RuntimeError):
    """A requested kernel backend has no implementation or failed to import."""


@dataclass(frozen=True)
class KernelSet:
    """The functions a trainer calls; signatures as in the reference modules."""

    framework: str
    tanh_normal: Callable
    hl_gauss_ce: Callable
    hl_gauss_decode: Callable
    hl_gauss_hist: Callable
    lambda_returns: Callable
    bound: dict[str, str]  # op -> backend actually bound ("reference", "triton", ...), never "auto"
    reasons: dict[str, str] = field(default_factory=dict)  # op -> why that backend, in one line


def _resolve_auto(reports: Mapping, framework: str, op: str, device: str | None,
                  shapes: Mapping[str, int] | None) -> fastest.Choice:
    """The "auto" policy, in one place: the backend the GPU benchmark table's `reports` measured fastest
    at `shapes` on `device`, and never one slower than the compiled reference (fastest.choose); a Triton
    pick with triton not installed gets the reference, saying so."""
    choice = fastest.choose(reports, framework, op, device, shapes)
    if choice.backend == "triton" and importlib.util.find_spec("triton") is None:
        return fastest.Choice("reference", f"triton is not installed (the report: {choice.reason})")
    return choice


def _torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _check_runnable(backend: str) -> None:
    """Triton compiles for a GPU; without one it runs only in its (slow) interpreter, which must be
    switched on before triton is first imported. Refuse clearly rather than fail deep inside a launch."""
    if backend == "triton" and not _torch_cuda() and os.environ.get("TRITON_INTERPRET") != "1":
        raise KernelUnavailableError(
            "the Triton kernels need a CUDA GPU; on a CPU they run only in Triton's interpreter "
            "(slow, for checks): start with TRITON_INTERPRET=1 set, or use --kernels reference")


def _load(framework: str, backend: str, op: str) -> ModuleType:
    _check_runnable(backend)
    path = _MODULES.get((framework, backend, op))
    if path is None:
        raise KernelUnavailableError(
            _NOT_BUILT.get(backend, f"no {backend!r} implementation of {op!r} for {framework!r}"))
    try:
        return importlib.import_module(path)
    except ImportError as err:
        raise KernelUnavailableError(
            f"backend {backend!r} for {framework} op {op!r} failed to import ({path}): {err!r}") from err


def bind(framework: str, backend: str = "auto", overrides: Mapping[str, str] | None = None,
         shapes: Mapping[str, int] | None = None, *, table: Path = fastest.TABLE) -> KernelSet:
    """Bind every op of `framework` to `backend` ("auto" resolves per op), `overrides` op -> backend.

    `shapes`: the configured op dims on one device, `op_shapes(cfg, action_size, world_size)`; without
    them "auto" binds the references. `table`: the benchmark table "auto" reads (tests point it elsewhere).
    Raises ValueError for unknown names and KernelUnavailableError when a requested backend cannot
    be loaded.
    """
    validate_choice(framework, backend, overrides)
    overrides = overrides or {}
    # Only "auto" with shapes asks for the device: torch then initialises CUDA, JAX its backend.
    auto = "auto" in (backend, *overrides.values()) and shapes is not None
    device = fastest.device_name(framework) if auto else None
    reports = fastest.load_table(table) if device is not None else {}
    bound, reasons, functions = {}, {}, {}
    for op in OPS:
        requested = overrides.get(op, backend)
        if requested == "auto":
            chosen, reasons[op] = _resolve_auto(reports, framework, op, device, shapes)
        else:
            chosen = requested
            flag = "--kernel-overrides" if op in overrides else f"--kernels {backend}"
            reasons[op] = f"requested ({flag})"
        module = _load(framework, chosen, op)
        functions.update({name: getattr(module, name) for name in _OP_FUNCTIONS[op]})
        bound[op] = chosen
    logger.info("kernels bound for %s: %s (%s)", framework, bound, reasons)
    return KernelSet(framework=framework, bound=bound, reasons=reasons, **functions)
