"""Data parallelism on the torch path: one process per device, launched by torchrun, talking through
`torch.distributed` (NCCL on GPUs, gloo on CPUs). The twin of on_jax/data_parallel.py.

Each rank steps num_envs / W envs and keeps its own slice of every rollout; every rank holds the same
parameters (rank 0's, broadcast at start) and stays in step because each optimiser step sees the
gradients averaged over the ranks: one flat bucket, all-reduced eagerly. The collectives run outside any
compiled region (torch.compiler.disable: a graph break), so no CUDA graph ever captures an NCCL call,
a known source of deadlocks. With W = 1 every method is the identity and no graph breaks.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist


def rank_seed(seed: int, rank: int) -> int:
    """The env and sampling seed of global rank `rank`: the run's seed on rank 0 (a one-rank run is the
    plain run), and for the others a SeedSequence draw of (seed, rank), so seeds differ across ranks and
    nodes (the global rank, never the local one, enters) and do not collide with other runs' seeds."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


SEED_SCHEME = ("rank r draws envs and noise from seed if r == 0 else "
               "numpy.random.SeedSequence([seed, r]).generate_state(1)[0]; networks start from rank 0's")


@torch.compiler.disable
def _all_reduce_sum(flat: torch.Tensor) -> torch.Tensor:
    flat = flat.clone()
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    return flat


@torch.compiler.disable
def _all_gather(x: torch.Tensor, world_size: int) -> torch.Tensor:
    parts = [torch.empty_like(x) for _ in range(world_size)]
    dist.all_gather(parts, x.contiguous())
    return torch.stack(parts)


class DataParallel:
    """The data-parallel group: world_size ranks, this process being `rank` (global) on `local_rank`."""

    def __init__(self, world_size: int = 1, rank: int = 0, local_rank: int = 0):
        self.world_size, self.rank, self.local_rank = world_size, rank, local_rank

    def __repr__(self) -> str:
        return f"DataParallel(world_size={self.world_size}, rank={self.rank}, local_rank={self.local_rank})"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean_grads(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """The gradients averaged over the ranks: flattened into one bucket, one all-reduce, split back."""
        if self.world_size == 1:
            return grads
        flat = _all_reduce_sum(torch.cat([g.reshape(-1) for g in grads])) / self.world_size
        return [part.view_as(g) for part, g in zip(flat.split([g.numel() for g in grads]), grads)]

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean over ranks (of per-rank means over equal-sized batches)."""
        return x if self.world_size == 1 else _all_reduce_sum(x) / self.world_size

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.world_size == 1 else _all_reduce_sum(x)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """x of every rank, stacked: [W, ...]."""
        return x[None] if self.world_size == 1 else _all_gather(x, self.world_size)

    def broadcast_(self, tensors) -> None:
        """Overwrite `tensors` on every rank with rank 0's."""
        if self.world_size > 1:
            for t in tensors:
                dist.broadcast(t.data, src=0)

    def gather_objects(self, obj) -> list | None:
        """Every rank's `obj` (picklable) on rank 0, in rank order; None on the other ranks."""
        if self.world_size == 1:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def all_objects(self, obj) -> list:
        """Every rank's `obj` (picklable) on every rank, in rank order."""
        if self.world_size == 1:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


SINGLE = DataParallel()


def from_launcher() -> DataParallel:
    """The group torchrun (or any launcher setting RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous's
    MASTER_ADDR / MASTER_PORT) started this process in, the process group initialised (NCCL when CUDA is
    there, gloo otherwise); SINGLE when not launched so."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return SINGLE
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        import jax

        torch.cuda.set_device(local_rank)
        # JAX (the DMC physics behind DLPack) opens this rank's GPU only, not a context on every GPU; its
        # backend starts later, when the envs are made.
        jax.config.update("jax_cuda_visible_devices", str(local_rank))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        kwargs = {"device_id": torch.device("cuda", local_rank)} if backend == "nccl" else {}
        dist.init_process_group(backend, **kwargs)
    return DataParallel(world_size, rank, local_rank)
