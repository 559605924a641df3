"""Epochs of shuffled minibatches over a flat batch (shared by REPPO and PPO), the twin of
on_jax.minibatches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, TypeVar

import torch

B = TypeVar("B", bound=NamedTuple)


def minibatches(batch: B, num_epochs: int, num_minibatches: int, generator: torch.Generator) -> Iterator[B]:
    """Yield num_epochs random partitions of `batch` (a NamedTuple of [M, ...] tensors) into
    num_minibatches equal minibatches, drawing the permutations from `generator`."""
    num = batch[0].shape[0]
    size = num // num_minibatches
    for _ in range(num_epochs):
        perm = torch.randperm(num, device=batch[0].device, generator=generator)
        for i in range(num_minibatches):
            idx = perm[i * size:(i + 1) * size]
            yield type(batch)(*(x[idx] for x in batch))


def mean_metrics(history: list[dict]) -> dict:
    """The mean over update steps of each metric (tensors stay on the device: no host sync)."""
    return {k: torch.stack([h[k] for h in history]).mean() for k in history[0]}
