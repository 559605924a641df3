"""What runs on this machine, and the reason for everything that does not (shown by pytest -ra).

Defaults: on a GPU every shape and env; on a CPU the references, compiled references and XLA at the two
smaller shapes, interpreted kernels (Triton's interpreter, Pallas interpret mode) at the small shape only,
and end to end only ToyPointMass (MJX compiles CartpoleBalance and HumanoidRun for minutes on 2 cores).
--bench-shapes and --bench-envs override the shapes and envs; nothing overrides what needs CUDA.
"""

from __future__ import annotations

import importlib.util

from bench import machine
from bench.shapes import CPU_DEFAULT, GPU_DEFAULT, INTERPRETER_SHAPES, SHAPES

GPU_ENVS = ("HumanoidRun", "CartpoleBalance")
CPU_ENVS = ("ToyPointMass",)
ENVS = GPU_ENVS + CPU_ENVS


def _listed(value: str, default: tuple[str, ...], known: tuple[str, ...], option: str) -> tuple[str, ...]:
    if value == "auto":
        return default
    if value == "all":
        return known
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{option}: unknown {unknown}; choose among {known}, 'all' or 'auto'")
    return names


def validate(config) -> None:
    """Raise ValueError for an unknown name in --bench-shapes or --bench-envs (before anything runs)."""
    _listed(config.getoption("bench_shapes"), (), tuple(SHAPES), "--bench-shapes")
    _listed(config.getoption("bench_envs"), (), ENVS, "--bench-envs")


def shapes(config) -> tuple[str, ...]:
    default = GPU_DEFAULT if machine.has_cuda() or machine.jax_on_gpu() else CPU_DEFAULT
    return _listed(config.getoption("bench_shapes"), default, tuple(SHAPES), "--bench-shapes")


def envs(config) -> tuple[str, ...]:
    default = GPU_ENVS if machine.has_cuda() or machine.jax_on_gpu() else CPU_ENVS
    return _listed(config.getoption("bench_envs"), default, ENVS, "--bench-envs")


def _interpreted(variant: str) -> bool:
    if variant.startswith("triton"):
        return not machine.has_cuda()
    return variant == "pallas" and not machine.jax_on_gpu()


def op_skip_reason(config, variant: str, shape: str) -> str | None:
    if variant.endswith("+graph") and not machine.has_cuda():
        return "CUDA graphs need a CUDA GPU"
    if variant.startswith("triton") and importlib.util.find_spec("triton") is None:
        return "triton is not installed (the `triton` extra)"
    if shape not in shapes(config):
        return f"shape {shape!r} not selected (CPU default: {', '.join(CPU_DEFAULT)}; see --bench-shapes)"
    if _interpreted(variant) and shape not in INTERPRETER_SHAPES:
        return (f"without a GPU {variant} runs in an interpreter: only at {', '.join(INTERPRETER_SHAPES)} "
                "(a correctness smoke, not a kernel time)")
    return None


def e2e_skip_reason(config, env: str, needs_cuda: bool) -> str | None:
    if needs_cuda and not machine.has_cuda():
        return "needs CUDA: torch.compile with CUDA graphs (and compiled Triton kernels)"
    if env not in envs(config):
        return (f"env {env!r} not selected (default: {', '.join(GPU_ENVS)} on a GPU, {', '.join(CPU_ENVS)} "
                "on a CPU, where MJX compiles the others for minutes; --bench-envs to choose)")
    return None
