"""The torch ways to run one op: the eager reference, torch.compile of it (plain and under a CUDA graph) and
the Triton kernel (plain and under a CUDA graph). Every one is built from the same inputs and timed the same
way, so their ratios are what a trainer would see."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from bench import machine, memory
from bench.built import Built
from bench.graphs import cuda_graphed
from bench.op_data import OPS, as_tuple, cotangents, inputs
from bench.shapes import Shape

VARIANTS = ("torch-eager", "torch-compile", "torch-compile+graph", "triton", "triton+graph")


def device() -> str:
    return "cuda" if machine.has_cuda() else "cpu"


def _impl(op: str, variant: str) -> Callable:
    if variant.startswith("triton"):
        return getattr(importlib.import_module(f"reppo_fast.kernels.triton_ops.{op}"), op)
    fn = getattr(importlib.import_module(f"reppo_fast.kernels.reference_torch.{op}"), op)
    if variant.startswith("torch-compile"):
        import torch

        # A fresh dynamo cache per benchmark: each (op, mode, shape) compiles its own specialised graph,
        # never hits the recompile limit, and fullgraph=True refuses a silent fall back to eager.
        torch._dynamo.reset()
        fn = torch.compile(fn, fullgraph=True, dynamic=False)
    return fn


def build(op: str, mode: str, shape: Shape, variant: str) -> Built:
    import torch

    spec = OPS[op]
    dev = device()
    fn = _impl(op, variant)
    args = {k: torch.as_tensor(v, device=dev) for k, v in inputs(op, shape).items()}
    names = spec.outputs
    if mode == "fwdbwd":
        diff = [args[k].requires_grad_() for k in spec.differentiable]
        cot = [torch.as_tensor(c, device=dev) for c in cotangents(op, shape)]
        names = names + tuple(f"grad_{k}" for k in spec.differentiable)

        def call():
            outs = as_tuple(fn(*(args[k] for k in spec.args), **spec.kwargs))
            return outs + torch.autograd.grad(outs, diff, cot)
    else:
        def call():
            return as_tuple(fn(*(args[k] for k in spec.args), **spec.kwargs))

    def sync(_):
        if dev == "cuda":
            torch.cuda.synchronize()

    interpreted = variant.startswith("triton") and dev != "cuda"
    if variant.endswith("+graph"):
        call()  # compile outside the capture; cuda_graphed warms up again on its side stream
        run, capture_peak = cuda_graphed(call)
        return Built(run, sync, names, lambda: capture_peak, _to_numpy, interpreted)
    return Built(call, sync, names, lambda: memory.torch_peak_added(call), _to_numpy, interpreted)


def _to_numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()
