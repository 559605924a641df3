"""Epochs of shuffled minibatches over a flat batch, as nested lax.scans (shared by REPPO and PPO)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def scan_minibatches(step: Callable, carry, batch, key, num_epochs: int, num_minibatches: int):
    """Run `step(carry, minibatch, key) -> (carry, metrics)` over num_epochs random partitions of `batch`
    (a pytree of [M, ...] arrays) into num_minibatches equal minibatches. Returns (carry, mean metrics)."""
    num = jax.tree.leaves(batch)[0].shape[0]
    size = num // num_minibatches

    def minibatch(c, inputs):
        idx, k = inputs
        return step(c, jax.tree.map(lambda x: x[idx], batch), k)

    def epoch(c, k):
        k_perm, k_mb = jax.random.split(k)
        perm = jax.random.permutation(k_perm, num).reshape(num_minibatches, size)
        return jax.lax.scan(minibatch, c, (perm, jax.random.split(k_mb, num_minibatches)))

    carry, metrics = jax.lax.scan(epoch, carry, jax.random.split(key, num_epochs))
    return carry, jax.tree.map(jnp.mean, metrics)
