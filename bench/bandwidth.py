"""The device's copy bandwidth, measured once per run: the roofline that achieved GB/s is read against.

A device-to-device copy reads and writes every byte once, so its rate is the best an op that streams its
inputs and outputs once can hope for. The best of a few trials is kept: it is a ceiling, not a typical run.
"""

from __future__ import annotations

import time

from bench import machine

_GPU_BYTES = 1 << 30  # 1 GiB: far beyond any L2
_CPU_BYTES = 1 << 27  # 128 MiB: beyond a server CPU's L3, and quick on 2 cores
_TRIALS = 5
_COPIES = 10


def copy_bandwidth() -> dict:
    """{"gbps": read + write GB/s of a large copy, "method": how it was measured, "bytes": buffer size}."""
    if machine.has_cuda():
        return _torch_cuda()
    if machine.jax_on_gpu():
        return _jax_gpu()
    return _torch_cpu()


def _torch_cuda() -> dict:
    import torch

    src = torch.randn(_GPU_BYTES // 4, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(_TRIALS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(_COPIES):
            dst.copy_(src)
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3 / _COPIES)
    return {"gbps": 2 * _GPU_BYTES / best / 1e9, "method": "torch copy_ on CUDA, CUDA events",
            "bytes": _GPU_BYTES}


def _jax_gpu() -> dict:
    import jax
    import jax.numpy as jnp

    # x * 2 rather than a copy, which XLA may elide: one read and one write per element either way.
    double = jax.jit(lambda x: x * 2.0)
    x = jnp.ones(_GPU_BYTES // 4, jnp.float32)
    double(x).block_until_ready()
    best = float("inf")
    for _ in range(_TRIALS):
        start = time.perf_counter()
        for _ in range(_COPIES):
            y = double(x)
        y.block_until_ready()
        best = min(best, (time.perf_counter() - start) / _COPIES)
    return {"gbps": 2 * _GPU_BYTES / best / 1e9, "method": "jax x * 2 on GPU, wall clock",
            "bytes": _GPU_BYTES}


def _torch_cpu() -> dict:
    import torch

    src = torch.randn(_CPU_BYTES // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(_TRIALS):
        start = time.perf_counter()
        for _ in range(_COPIES):
            dst.copy_(src)
        best = min(best, (time.perf_counter() - start) / _COPIES)
    return {"gbps": 2 * _CPU_BYTES / best / 1e9, "method": f"torch copy_ on CPU ({torch.get_num_threads()} "
            "threads), wall clock", "bytes": _CPU_BYTES}
