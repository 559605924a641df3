"""The one place where the torch path compiles a function, and the ownership rule for what it returns.

With CUDA graphs (torch.compile mode `reduce-overhead`, CUDA-graph trees), a compiled call's outputs live
in the graph's memory pool: the next replay overwrites or frees them ("accessing tensor output of
CUDAGraphs that has been overwritten by a subsequent run"), or, unchecked, a caller that kept them (the
rollout stacks every step's outputs, the acting carry feeds `norm` back, the update keeps every step's
metrics) silently reads the next step's values. So every compiled call returns tensors the caller owns:
they are cloned at the call boundary, here, for every algorithm. The copies are small (one step's
actions and values, a dict of scalars) next to the work of the call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils import _pytree as pytree


def compile_mode(cfg, device: torch.device) -> tuple[bool, str | None]:
    """(compile on?, torch.compile mode): `auto` compiles on CUDA only; CUDA graphs need CUDA."""
    compile_on = cfg.torch.compile == "on" or (cfg.torch.compile == "auto" and device.type == "cuda")
    mode = "reduce-overhead" if compile_on and cfg.torch.cuda_graphs and device.type == "cuda" else None
    return compile_on, mode


def owned_outputs(fn: Callable, *, cuda_graphs: bool) -> Callable:
    """fn with every tensor it returns cloned (see the module docstring). With CUDA graphs, each call
    first marks a new step for the graph trees: the previous call's outputs are already copies, so the
    trees may reuse their memory at once."""
    def call(*args, **kwargs):
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        return pytree.tree_map_only(torch.Tensor, torch.Tensor.clone, fn(*args, **kwargs))

    call.__wrapped__ = fn
    return call


def compiled(fn: Callable, cfg, device: torch.device, *, fullgraph: bool) -> Callable:
    """fn itself when compile is off; else torch.compile(fn) (CUDA graphs per cfg) returning owned
    outputs."""
    compile_on, mode = compile_mode(cfg, device)
    if not compile_on:
        return fn
    return owned_outputs(torch.compile(fn, fullgraph=fullgraph, mode=mode), cuda_graphs=mode is not None)
