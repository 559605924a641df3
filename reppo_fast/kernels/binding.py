"""The explicit kernel binding: which implementation of each op a trainer gets.

`bind(framework, backend, overrides)` imports the chosen modules (lazily, so importing this file
loads neither torch nor jax) and returns a `KernelSet` of plain functions plus `bound`, the backend
actually used per op, which the trainer records in its run metadata. A requested backend that is
missing or fails to import raises `KernelUnavailableError`: there is no silent fallback and no
environment-variable switch.
"""

import importlib
import importlib.util
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType

# The choices are config values: their tables live with the config (which imports nothing heavy), and
# validate_choice is the one check of them, for the config and for `bind` alike. BACKENDS and FRAMEWORKS
# are re-exported by the package.
from reppo_fast.config import BACKENDS, FRAMEWORKS, OPS, validate_choice  # noqa: F401

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


def _resolve_auto(framework: str, op: str) -> str:
    """The "auto" policy, in one place: Triton for torch on CUDA; the reference everywhere else. The
    Pallas kernels are opt-in (`--kernels pallas`) until a GPU benchmark shows they beat XLA."""
    del op
    if framework == "torch" and _torch_cuda() and importlib.util.find_spec("triton") is not None:
        return "triton"
    return "reference"


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


def bind(framework: str, backend: str = "auto", overrides: Mapping[str, str] | None = None) -> KernelSet:
    """Bind every op of `framework` to `backend` ("auto" resolves per op), `overrides` op -> backend.

    Raises ValueError for unknown names and KernelUnavailableError when a requested backend cannot
    be loaded.
    """
    validate_choice(framework, backend, overrides)
    overrides = overrides or {}
    bound = {}
    functions = {}
    for op in OPS:
        requested = overrides.get(op, backend)
        chosen = _resolve_auto(framework, op) if requested == "auto" else requested
        module = _load(framework, chosen, op)
        functions.update({name: getattr(module, name) for name in _OP_FUNCTIONS[op]})
        bound[op] = chosen
    logger.info("kernels bound for %s: %s", framework, bound)
    return KernelSet(framework=framework, bound=bound, **functions)
