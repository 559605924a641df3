"""Peak device memory added by one call.

torch on CUDA: the caching allocator's peak during the call minus what was allocated before it (outputs
and gradients included). JAX: XLA's compiled memory analysis, temporaries + outputs, the same quantity
known before the call runs (JAX has no resettable peak counter). Under a CUDA graph the replay allocates
nothing: the graph's memory is taken at capture, so graphed variants report the capture's peak.
torch on a CPU has no allocator statistics: None.
"""

from __future__ import annotations

from collections.abc import Callable

from bench import machine


def torch_peak_added(call: Callable[[], object]) -> int | None:
    if not machine.has_cuda():
        return None
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    out = call()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    del out
    return peak


def jax_peak_added(jitted, *args, with_arguments: bool = False) -> int | None:
    """Temporaries + outputs (+ arguments: the whole footprint of the call) of `jitted`, a jax.jit function,
    at `args`, from XLA's memory analysis of the compiled executable (cached: no second compilation)."""
    stats = jitted.lower(*args).compile().memory_analysis()
    if stats is None:
        return None
    arguments = stats.argument_size_in_bytes if with_arguments else 0
    return int(arguments + stats.temp_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes)
