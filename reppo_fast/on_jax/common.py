"""What every algorithm on the JAX path shares: the running observation normaliser (docs/algorithms.md
section 1), epochs of shuffled minibatches, the rollout's episode statistics and the train metrics built
from them. The torch twin is on_torch/common.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from reppo_fast.algorithm import APPLIED_STEPS, COUNT_METRICS, SKIPPED_STEPS
from reppo_fast.on_jax.data_parallel import SINGLE

# --- running observation normalisation (part of the train state and the checkpoint) ------------------

NORM_EPS = 1e-2  # (x - mean) / sqrt(var + 1e-2), as the reference


class NormState(NamedTuple):
    mean: jnp.ndarray   # [O] float32
    var: jnp.ndarray    # [O] float32, population variance of everything seen
    count: jnp.ndarray  # [] float32, observations seen (float: int32 overflows past 2^31 steps)


def norm_init(obs_size: int) -> NormState:
    return NormState(jnp.zeros((obs_size,), jnp.float32), jnp.ones((obs_size,), jnp.float32),
                     jnp.zeros((), jnp.float32))


def norm_update(state: NormState, obs) -> NormState:
    """The statistics updated with a batch obs [N, O] (norm_merge with the batch's own statistics)."""
    batch = NormState(jnp.mean(obs, axis=0), jnp.var(obs, axis=0), jnp.asarray(obs.shape[0], jnp.float32))
    return norm_merge(state, batch)


def norm_merge(a: NormState, b: NormState) -> NormState:
    """The statistics of a's and b's observations together, Chan et al.'s parallel update:
    delta = mean_b - mean_a; n = n_a + n_b; mean = mean_a + delta * n_b / n;
    M2 = var_a * n_a + var_b * n_b + delta^2 * n_a * n_b / n; var = M2 / n."""
    n = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * b.count / n
    m2 = a.var * a.count + b.var * b.count + jnp.square(delta) * a.count * b.count / n
    return NormState(mean, m2 / n, n)


def norm_pool(state: NormState, dp) -> NormState:
    """The statistics of every device's observations, from each device's `state` (equal counts, as every
    device steps num_envs / W envs): mean = mean_d mean_d, var = mean_d var_d + mean_d (mean_d - mean)^2."""
    if dp.axis is None:
        return state
    means, variances = dp.gather(state.mean), dp.gather(state.var)
    mean = jnp.mean(means, axis=0)
    var = jnp.mean(variances, axis=0) + jnp.mean(jnp.square(means - mean), axis=0)
    return NormState(mean, var, dp.sum(state.count))


def pooled_mean_std(x, dp):
    """The mean and (population) std of x [B] over every device's x (equal sizes); one device: jnp's."""
    if dp.axis is None:
        return jnp.mean(x), jnp.std(x)
    moments = dp.gather(jnp.stack([jnp.mean(x), jnp.var(x)]))  # [W, 2]
    mean = jnp.mean(moments[:, 0])
    var = jnp.mean(moments[:, 1]) + jnp.mean(jnp.square(moments[:, 0] - mean))
    return mean, jnp.sqrt(var)


def normalize(state: NormState, obs, enabled: bool = True):
    if not enabled:
        return obs
    return (obs - state.mean) / jnp.sqrt(state.var + NORM_EPS)


# --- epochs x minibatches, each step kept only if finite ---------------------------------------------

def all_finite(tree) -> jnp.ndarray:
    """[] bool: every floating-point entry of every leaf is finite (integer leaves, e.g. counts, are)."""
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.bool_(True)


def keep_if_finite(old, new, metrics, dp=SINGLE):
    """(old or new, skipped): a step whose metrics (its losses and gradient norms) or new state (parameters,
    optimiser state) hold a NaN or inf is skipped on the device, a select with no host sync, so a diverging
    step never reaches the train state. Skipped on every device when on any, so replicas stay equal."""
    skipped = dp.sum((~all_finite((new, metrics))).astype(jnp.int32)) > 0
    return jax.tree.map(lambda n, o: jnp.where(skipped, o, n), new, old), skipped


def applied_mean(metrics: dict, skipped) -> dict:
    """Metrics [E, M] of every step -> their means over the applied steps (NaN when none was), with the
    SKIPPED_STEPS and APPLIED_STEPS counts."""
    applied = ~skipped
    count = jnp.sum(applied)

    def mean(x):
        mask = applied.reshape(applied.shape + (1,) * (x.ndim - applied.ndim))
        total = jnp.sum(jnp.where(mask, x, 0.0), axis=(0, 1))
        return jnp.where(count > 0, total / jnp.maximum(count, 1).astype(total.dtype), jnp.nan)

    return {**{k: mean(v) for k, v in metrics.items()}, SKIPPED_STEPS: jnp.sum(skipped), APPLIED_STEPS: count}


def scan_minibatches(step: Callable, carry, batch, key, num_epochs: int, num_minibatches: int, dp=SINGLE):
    """Run `step(carry, minibatch, key) -> (carry, metrics)` over num_epochs random partitions of `batch`
    (a pytree of [M, ...] arrays) into num_minibatches equal minibatches, each step kept only if finite
    (keep_if_finite). Returns (carry, metrics averaged over the applied steps, with SKIPPED_STEPS and
    APPLIED_STEPS)."""
    num = jax.tree.leaves(batch)[0].shape[0]
    size = num // num_minibatches

    def minibatch(c, inputs):
        idx, k = inputs
        new, metrics = step(c, jax.tree.map(lambda x: x[idx], batch), k)
        c, skipped = keep_if_finite(c, new, metrics, dp)
        return c, (metrics, skipped)

    def epoch(c, k):
        k_perm, k_mb = jax.random.split(k)
        perm = jax.random.permutation(k_perm, num).reshape(num_minibatches, size)
        return jax.lax.scan(minibatch, c, (perm, jax.random.split(k_mb, num_minibatches)))

    carry, (metrics, skipped) = jax.lax.scan(epoch, carry, jax.random.split(key, num_epochs))
    return carry, applied_mean(metrics, skipped)


# --- episode statistics and train metrics -------------------------------------------------------------

def episode_stats(ep_return, reward, terminated, truncated, nonfinite):
    """One step's bookkeeping over N envs: (new running returns [N], stats of the episodes that ended)."""
    ended = terminated | truncated
    ep_return = ep_return + reward
    stats = {"episode_return_sum": jnp.sum(jnp.where(ended, ep_return, 0.0)), "episodes": jnp.sum(ended),
             "nonfinite": jnp.sum(nonfinite)}
    return jnp.where(ended, 0.0, ep_return), stats


def train_metrics(stats: dict, reward, returns, dp=SINGLE) -> dict:
    """The rollout's episode statistics, mean reward and mean return, as logged by every algorithm, over
    every device's envs."""
    stats = dp.sum(stats)
    episodes = jnp.maximum(stats["episodes"], 1)
    return {"train/episode_return": stats["episode_return_sum"] / episodes,
            "train/episodes": stats["episodes"], "train/nonfinite": stats["nonfinite"],
            "train/reward": dp.mean(jnp.mean(reward)), "train/returns": dp.mean(jnp.mean(returns))}


def reduce_metrics(metrics: dict, dp) -> dict:
    """Per-device metrics -> the group's: counts (COUNT_METRICS) summed, everything else (means over
    equal-sized batches) averaged."""
    return {k: dp.sum(v) if k in COUNT_METRICS else dp.mean(v) for k, v in metrics.items()}
