"""What every algorithm on the torch path shares, the twin of on_jax/common.py: the running observation
normaliser (docs/algorithms.md section 1), epochs of shuffled minibatches, the rollout's episode
statistics and the train metrics built from them, and the clipped optimiser step.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import NamedTuple, TypeVar

import torch

from reppo_fast.algorithm import APPLIED_STEPS, COUNT_METRICS, SKIPPED_STEPS
from reppo_fast.on_torch.data_parallel import SINGLE

B = TypeVar("B", bound=NamedTuple)

# --- running observation normalisation (part of the train state and the checkpoint) ------------------

NORM_EPS = 1e-2  # (x - mean) / sqrt(var + 1e-2), as the reference


class NormState(NamedTuple):
    mean: torch.Tensor   # [O] float32
    var: torch.Tensor    # [O] float32, population variance of everything seen
    count: torch.Tensor  # [] float32, observations seen


def norm_init(obs_size: int, device=None) -> NormState:
    return NormState(torch.zeros(obs_size, device=device), torch.ones(obs_size, device=device),
                     torch.zeros((), device=device))


def norm_update(state: NormState, obs: torch.Tensor) -> NormState:
    """The statistics updated with a batch obs [N, O] (norm_merge with the batch's own statistics)."""
    return norm_merge(state, NormState(obs.mean(dim=0), obs.var(dim=0, unbiased=False), float(obs.shape[0])))


def norm_merge(a: NormState, b: NormState) -> NormState:
    """The statistics of a's and b's observations together: Chan et al.'s parallel update
    (see on_jax.common.norm_merge); b.count may be a Python number (a batch's size)."""
    n = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * b.count / n
    m2 = a.var * a.count + b.var * b.count + delta.square() * a.count * b.count / n
    return NormState(mean, m2 / n, n)


def norm_pool(state: NormState, dp) -> NormState:
    """The statistics of every rank's observations from each rank's `state` (equal counts; see
    on_jax.common.norm_pool): one gather of [mean, var] per rank."""
    if dp.world_size == 1:
        return state
    moments = dp.gather(torch.stack([state.mean, state.var]))  # [W, 2, O]
    means, variances = moments[:, 0], moments[:, 1]
    mean = means.mean(dim=0)
    var = variances.mean(dim=0) + (means - mean).square().mean(dim=0)
    return NormState(mean, var, state.count * dp.world_size)


def pooled_mean_std(x: torch.Tensor, dp) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and population std of x [B] over every rank's x (equal sizes); one rank: x's own."""
    if dp.world_size == 1:
        return x.mean(), x.std(unbiased=False)
    moments = dp.gather(torch.stack([x.mean(), x.var(unbiased=False)]))  # [W, 2]
    mean = moments[:, 0].mean()
    return mean, torch.sqrt(moments[:, 1].mean() + (moments[:, 0] - mean).square().mean())


def normalize(state: NormState, obs: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    if not enabled:
        return obs
    return (obs - state.mean) / torch.sqrt(state.var + NORM_EPS)


# --- epochs x minibatches ---------------------------------------------------------------------------

def minibatches(batch: B, num_epochs: int, num_minibatches: int, generator: torch.Generator) -> Iterator[B]:
    """Yield num_epochs random partitions of `batch` (a NamedTuple of [M, ...] tensors) into
    num_minibatches equal minibatches, drawing the permutations from `generator`.

    Graph-safe (on_torch/cuda_graph.py): every epoch's permutation is drawn at once on the device, as the
    ranks of random 62-bit keys (argsort), a fixed sequence of kernels that a replay redraws. A tie between
    keys (probability below M^2 / 2^63) is the only departure from a uniform permutation."""
    num = batch[0].shape[0]
    size = num // num_minibatches
    keys = torch.randint(0, 2**62, (num_epochs, num), device=batch[0].device, generator=generator)
    perms = keys.argsort(dim=1)
    for epoch in range(num_epochs):
        for i in range(num_minibatches):
            idx = perms[epoch, i * size:(i + 1) * size]
            yield type(batch)(*(x[idx] for x in batch))


# --- each update step kept only if finite --------------------------------------------------------------

SKIPPED = "update/skipped"  # a step's own marker (1.0: skipped), which mean_metrics turns into the counts


def _train_tensors(modules, optimizers) -> list[torch.Tensor]:
    """Every tensor an update step may change: the modules' parameters and buffers, the optimisers' states."""
    tensors = [t for m in modules for t in itertools.chain(m.parameters(), m.buffers())]
    for opt in optimizers:
        tensors += [v for state in opt.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return tensors


@torch.no_grad()
def _all_finite(tensors: list[torch.Tensor]) -> torch.Tensor:
    """[] bool on the tensors' device (at least one tensor; integer ones, e.g. counts, are always finite):
    the largest |x| of each tensor, which is NaN or inf exactly when the tensor holds one (a foreach norm:
    one launch for them all)."""
    floats = [t for t in tensors if t.is_floating_point()]
    if not floats:
        return torch.ones((), dtype=torch.bool, device=tensors[0].device)
    return torch.isfinite(torch.stack(torch._foreach_norm(floats, float("inf")))).all()


def guarded_step(step: Callable[[], dict], modules, optimizers, dp=SINGLE) -> dict:
    """step() -> metrics, kept only if finite (on_jax.common.keep_if_finite): when a metric (a loss, a
    gradient norm) or anything the step changed in `modules` and `optimizers` holds a NaN or inf, on any
    rank, every tensor is put back as it was, with tensor selects and no host sync. A tensor the step
    created (an optimiser's lazily made state) goes back to zeros, Adam's initial state. The metrics gain
    SKIPPED (1.0 or 0.0)."""
    with torch.no_grad():
        tensors = _train_tensors(modules, optimizers)
        floats = [t for t in tensors if t.is_floating_point()]
        # x * 1 is x exactly (NaN, inf and -0 too): one foreach launch snapshots every float tensor.
        snapshot = dict(zip(map(id, floats), torch._foreach_mul(floats, 1.0) if floats else []))
        snapshot.update({id(t): t.clone() for t in tensors if not t.is_floating_point()})
    metrics = step()
    after = _train_tensors(modules, optimizers)
    finite = _all_finite([*after, *(v for v in metrics.values() if isinstance(v, torch.Tensor))])
    skipped = dp.sum((~finite).float()) > 0 if dp.world_size > 1 else ~finite
    with torch.no_grad():
        for t in after:
            old = snapshot.get(id(t))
            torch.where(skipped, old if old is not None else torch.zeros_like(t), t, out=t)
    return {**metrics, SKIPPED: skipped.float()}


def mean_metrics(history: list[dict]) -> dict:
    """The mean over the applied update steps of each metric (NaN when none was), and the steps' counts
    SKIPPED_STEPS and APPLIED_STEPS (tensors stay on the device: no host sync)."""
    skipped = torch.stack([h[SKIPPED] for h in history])
    applied = 1.0 - skipped
    count = applied.sum()

    def mean(values: torch.Tensor) -> torch.Tensor:
        total = torch.where(applied > 0, values, 0.0).sum()
        return torch.where(count > 0, total / count.clamp(min=1.0), torch.nan)

    names = [k for k in history[0] if k != SKIPPED]
    return {**{k: mean(torch.stack([h[k] for h in history])) for k in names},
            SKIPPED_STEPS: skipped.sum(), APPLIED_STEPS: count}


# --- episode statistics and train metrics -------------------------------------------------------------

def episode_stats(stats: dict, ep_return, reward, terminated, truncated, nonfinite):
    """One step's bookkeeping over N envs, accumulated into `stats` in place (device tensors, no host
    sync). Returns the new running returns [N]."""
    ended = terminated | truncated
    ep_return = ep_return + reward
    stats["episode_return_sum"] += torch.where(ended, ep_return, 0.0).sum()
    stats["episodes"] += ended.sum()
    stats["nonfinite"] += nonfinite.sum()
    return torch.where(ended, 0.0, ep_return)


def train_metrics(stats: dict, reward, returns, dp=SINGLE) -> dict:
    """The rollout's episode statistics, mean reward and mean return, as logged by every algorithm, over
    every rank's envs."""
    if dp.world_size > 1:
        names = sorted(stats)
        total = dp.sum(torch.stack([stats[k].float() for k in names]))
        stats = {k: total[i] for i, k in enumerate(names)}
    episodes = stats["episodes"].clamp(min=1)
    means = dp.mean(torch.stack([reward.mean(), returns.mean()]))
    return {"train/episode_return": stats["episode_return_sum"] / episodes,
            "train/episodes": stats["episodes"], "train/nonfinite": stats["nonfinite"],
            "train/reward": means[0], "train/returns": means[1]}


def reduce_metrics(metrics: dict, dp) -> dict:
    """Per-rank metrics (device tensors) -> the group's in one all-reduce: counts (COUNT_METRICS) summed,
    everything else (means over equal-sized batches) averaged."""
    if dp.world_size == 1:
        return metrics
    names = sorted(metrics)
    total = dp.sum(torch.stack([metrics[k].float().reshape(()) for k in names]))
    return {k: total[i] if k in COUNT_METRICS else total[i] / dp.world_size for i, k in enumerate(names)}


# --- optimiser steps ------------------------------------------------------------------------------------

def clip_grads_(grads: list[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """optax.clip_by_global_norm in place: g *= max_norm / max(||g||, max_norm) (max_norm None: no clip).
    Returns ||g||."""
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))  # one launch for every g
    if max_norm is not None:
        torch._foreach_mul_(grads, max_norm / torch.clamp(norm, min=max_norm))
    return norm


def step_optimizer(loss, params, opt, max_norm, dp=SINGLE) -> torch.Tensor:
    """Gradients of loss, averaged over the data-parallel ranks, clipped (clip_grads_), then one optimiser
    step. Returns the gradient norm."""
    grads = dp.mean_grads(list(torch.autograd.grad(loss, params)))
    norm = clip_grads_(grads, max_norm)
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()
    return norm
