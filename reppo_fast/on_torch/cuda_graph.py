"""One CUDA graph per phase: a graph-safe function captured once and replayed, so the GPU never waits on
Python launches.

A graph-safe function takes no arguments. It reads its inputs from tensors that outlive it (static buffers
the caller fills, parameters, optimiser state), writes its results into such tensors in place (`write_`)
or returns tensors it allocates (at capture: in the graph's private pool, so they are the same tensors at
every replay), launches the same kernels whatever the values (no .item(), no Python branch on a tensor,
static shapes) and draws its randomness from generators registered with the graph, which then advance at
every replay. The trainers' phases are written so (tests/on_torch/test_graph_safety.py checks it on a CPU:
no host syncs, no data-dependent shapes, the same ops at every call).

On CUDA, `Graphed` runs the function eagerly for `warmup` calls on a side stream (torch.compile compiles,
Adam makes its state, cuBLAS its workspace: none of which a capture allows), then captures the next call
and replays it from then on: one launch for the whole phase. Off CUDA, or with graphs off, every call runs
the function itself: the same code, so the CPU tests exercise what the GPU captures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils import _pytree as pytree


def write_(dst, src) -> None:
    """Copy every tensor of the pytree `src` into the same place of `dst` (same structure; None leaves are
    skipped): a graph's static buffers take new values without changing address. One foreach launch."""
    dst_leaves = [d for d in pytree.tree_leaves(dst) if d is not None]
    src_leaves = [s for s in pytree.tree_leaves(src) if s is not None]
    if len(dst_leaves) != len(src_leaves):
        raise ValueError(f"write_: {len(src_leaves)} tensors into {len(dst_leaves)} buffers")
    if dst_leaves:
        torch._foreach_copy_(dst_leaves, src_leaves)


def static_copy(tree):
    """A detached copy of every tensor of `tree`: the static buffers `write_` later fills."""
    return pytree.tree_map_only(torch.Tensor, lambda t: t.detach().clone(), tree)


class CudaCapture:
    """How `Graphed` warms up and captures on CUDA (tests put a CPU emulation of a graph in its place)."""

    @staticmethod
    def warm(fn: Callable):
        """One eager call, on a side stream as the CUDA docs' warm-up does, so that lazily made state is not
        tied to the capture stream."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            result = fn()
        torch.cuda.current_stream().wait_stream(stream)
        return result

    @staticmethod
    def capture(fn: Callable, generators: Sequence[torch.Generator]) -> tuple[object, Callable[[], None]]:
        """(what fn returned at capture, replay). The capture only records: the first replay does the work
        of the capturing call."""
        graph = torch.cuda.CUDAGraph()
        for generator in generators:
            # A user generator advances at each replay only when registered (the default one always does).
            graph.register_generator_state(generator)
        with torch.cuda.graph(graph):
            result = fn()
        return result, graph.replay


class Graphed:
    """fn() as one CUDA graph after `warmup` eager calls (see the module docstring); fn() itself when not
    `enabled`. Each call returns what fn returned at capture (the same static tensors every replay)."""

    def __init__(self, fn: Callable, *, enabled: bool, generators: Sequence[torch.Generator] = (),
                 warmup: int = 2, capture=CudaCapture):
        self.fn, self.enabled, self.generators, self.warmup, self.capture = (fn, enabled, generators, warmup,
                                                                             capture)
        self.calls, self.replay, self.result = 0, None, None

    def __call__(self):
        if not self.enabled:
            return self.fn()
        if self.replay is None:
            if self.calls < self.warmup:
                self.calls += 1
                return self.capture.warm(self.fn)
            self.result, self.replay = self.capture.capture(self.fn, self.generators)
        self.replay()
        return self.result
