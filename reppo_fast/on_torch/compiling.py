"""The one place where the torch path decides what it compiles and what it captures.

Two independent choices (both recorded in meta.json):
- torch.compile (`--compile`): inductor fuses each of the algorithm's pieces (acting, bootstrap, the update
  step) into few kernels. `auto` compiles on CUDA only: on a CPU, at these sizes, compiling costs more than
  it saves. No compile mode with CUDA graphs of its own: the trainer captures whole phases itself.
- CUDA graphs (`--cuda-graphs`, CUDA only): each phase (a rollout step, the whole update phase) is captured
  once and replayed (on_torch/cuda_graph.py), compiled or eager.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def compile_on(cfg, device: torch.device) -> bool:
    """torch.compile the algorithm's pieces? `auto` compiles on CUDA only."""
    return cfg.torch.compile == "on" or (cfg.torch.compile == "auto" and device.type == "cuda")


def graphs_on(cfg, device: torch.device) -> bool:
    """Capture the phases as CUDA graphs? Only on CUDA (cfg.torch.cuda_graphs is the switch there)."""
    return cfg.torch.cuda_graphs and device.type == "cuda"


def compiled(fn: Callable, cfg, device: torch.device, *, fullgraph: bool) -> Callable:
    """fn itself when compile is off; else torch.compile(fn) in inductor's default mode: its outputs are
    fresh tensors, as fn's (the CUDA graphs around it are the trainer's, which keep their outputs in static
    buffers)."""
    if not compile_on(cfg, device):
        return fn
    return torch.compile(fn, fullgraph=fullgraph)
