"""Data parallelism on the JAX path: the collectives an iteration needs, over the mesh axis DATA_AXIS.

One iteration runs under `shard_map` over a 1-D mesh of W devices (every local GPU, or every device of
every host after `jax.distributed.initialize`). Each device owns num_envs / W envs and its slice of every
rollout; parameters and optimiser state are replicated, and stay identical because every update averages
the gradients (`lax.pmean`) before the optimiser. With W = 1 nothing is mapped and every collective here is
the identity, so the single-device program is unchanged. The torch twin is on_torch/data_parallel.py.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

DATA_AXIS = "data"


class DataParallel(NamedTuple):
    """The data-parallel group an algorithm's update runs in (W = world_size devices)."""
    world_size: int = 1

    @property
    def axis(self) -> str | None:
        return DATA_AXIS if self.world_size > 1 else None

    def mean(self, tree):
        """The mean over devices of every leaf (gradients, per-device means of equal-sized batches)."""
        return tree if self.axis is None else jax.lax.pmean(tree, self.axis)

    def sum(self, tree):
        """The sum over devices of every leaf (counts)."""
        return tree if self.axis is None else jax.lax.psum(tree, self.axis)

    def gather(self, x):
        """x of every device, stacked: [W, ...]."""
        return x[None] if self.axis is None else jax.lax.all_gather(x, self.axis)

    def index(self):
        """This device's index in the group, 0..W-1 (the global index across hosts)."""
        return jnp.int32(0) if self.axis is None else jax.lax.axis_index(self.axis)

    def fold_in(self, key):
        """A key distinct on every device, from one replicated key (W = 1: the key itself)."""
        return key if self.axis is None else jax.random.fold_in(key, self.index())


SINGLE = DataParallel()
