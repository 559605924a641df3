"""The three ops as the benches see them: arguments, inputs, upstream gradients, the float64 gold and the
check every benchmark runs before it is timed.

Inputs are random, seeded and never all zeros: log_std spans [-2, 0.5], the old policy sits near the new
one, HL-Gauss targets cover the support, about 1 % of steps terminate and 0.5 % truncate.
"""

from __future__ import annotations

import functools
import zlib
from typing import NamedTuple

import numpy as np

from bench.shapes import Shape


class OpSpec(NamedTuple):
    args: tuple[str, ...]  # positional argument names, in the public order
    differentiable: tuple[str, ...]  # the arguments forward+backward differentiates
    outputs: tuple[str, ...]
    kwargs: dict
    modes: tuple[str, ...]  # "fwd", and "fwdbwd" when the op has a gradient


# v_min/v_max: the dmc preset's HL-Gauss support; gamma/lmbda: the paper's.
OPS = {
    "tanh_normal": OpSpec(("mean", "log_std", "noise", "old_mean", "old_log_std", "old_noise"),
                          ("mean", "log_std"), ("action", "log_prob", "kl"), {}, ("fwd", "fwdbwd")),
    "hl_gauss_ce": OpSpec(("logits", "targets"), ("logits",), ("loss",),
                          {"v_min": 0.0, "v_max": 150.0, "sigma_ratio": 0.75}, ("fwd", "fwdbwd")),
    "lambda_returns": OpSpec(("rewards", "next_values", "terminated", "truncated"), (), ("returns",),
                             {"gamma": 0.99, "lmbda": 0.95}, ("fwd",)),
}
CASES = [(op, mode) for op, spec in OPS.items() for mode in spec.modes]

# fp32 results against the float64 gold; a wrong kernel is off by O(1), rounding by ~1e-6 relative.
RTOL = 1e-4
ATOL = 1e-4


@functools.lru_cache(maxsize=2)
def inputs(op: str, shape: Shape) -> dict[str, np.ndarray]:
    """The op's arguments (float32, flags bool) at `shape`, by name."""
    rng = np.random.default_rng(zlib.crc32(f"{op}/{shape.name}".encode()))
    f32 = np.float32
    if op == "tanh_normal":
        B, A, S = shape.B, shape.A, shape.S
        mean = rng.standard_normal((B, A), f32)
        log_std = rng.uniform(-2.0, 0.5, (B, A)).astype(f32)
        return {"mean": mean, "log_std": log_std, "noise": rng.standard_normal((B, A), f32),
                "old_mean": mean + 0.3 * rng.standard_normal((B, A), f32),
                "old_log_std": log_std + 0.2 * rng.standard_normal((B, A), f32),
                "old_noise": rng.standard_normal((S, B, A), f32)}
    if op == "hl_gauss_ce":
        kw = OPS[op].kwargs
        return {"logits": 2.0 * rng.standard_normal((shape.B, shape.K), f32),
                "targets": rng.uniform(kw["v_min"], kw["v_max"], shape.B).astype(f32)}
    T, N = shape.T, shape.N
    return {"rewards": rng.standard_normal((T, N), f32),
            "next_values": (50.0 + 10.0 * rng.standard_normal((T, N))).astype(f32),
            "terminated": rng.random((T, N)) < 0.01, "truncated": rng.random((T, N)) < 0.005}


def output_shapes(op: str, shape: Shape) -> list[tuple[int, ...]]:
    return {"tanh_normal": [(shape.B, shape.A), (shape.B,), (shape.B,)], "hl_gauss_ce": [(shape.B,)],
            "lambda_returns": [(shape.T, shape.N)]}[op]


@functools.lru_cache(maxsize=2)
def cotangents(op: str, shape: Shape) -> list[np.ndarray]:
    """Random upstream gradients, one per output (never only .sum(): every output's gradient path is used)."""
    rng = np.random.default_rng(7)
    return [rng.standard_normal(s, np.float32) for s in output_shapes(op, shape)]


@functools.lru_cache(maxsize=1)
def gold(op: str, mode: str, shape: Shape, device: str) -> dict[str, np.ndarray]:
    """The torch reference run in float64 on `device`: outputs (and grad_<input> for "fwdbwd")."""
    import torch

    from reppo_fast.kernels import reference_torch

    spec = OPS[op]
    args = {k: torch.as_tensor(v, device=device) for k, v in inputs(op, shape).items()}
    args = {k: v if v.dtype == torch.bool else v.double() for k, v in args.items()}
    diff = [args[k].requires_grad_() for k in spec.differentiable] if mode == "fwdbwd" else []
    outs = as_tuple(getattr(reference_torch, op)(*(args[k] for k in spec.args), **spec.kwargs))
    result = {name: out for name, out in zip(spec.outputs, outs)}
    if diff:
        cot = [torch.as_tensor(c, device=device).double() for c in cotangents(op, shape)]
        grads = torch.autograd.grad(outs, diff, cot)
        result.update({f"grad_{k}": g for k, g in zip(spec.differentiable, grads)})
    return {k: v.detach().cpu().numpy() for k, v in result.items()}


def as_tuple(out) -> tuple:
    """An op's return value as a tuple of arrays in OPS[op].outputs order (NamedTuple or one array)."""
    return tuple(out) if isinstance(out, tuple) else (out,)


def assert_matches(got: dict[str, np.ndarray], expected: dict[str, np.ndarray], what: str) -> None:
    """Every output and gradient of `got` matches the float64 gold (fp32 rounding only)."""
    assert got.keys() == expected.keys(), f"{what}: outputs {sorted(got)} != {sorted(expected)}"
    for name, value in expected.items():
        scale = max(1.0, float(np.max(np.abs(value))))
        np.testing.assert_allclose(np.asarray(got[name], np.float64), value, rtol=RTOL, atol=ATOL * scale,
                                   err_msg=f"{what}: {name} differs from the float64 reference")
