"""The seam between the trainers and the algorithms, the same on both frameworks.

A framework has ONE trainer (`on_jax/trainer.py`, `on_torch/trainer.py`): the train state, the iteration
(rollout -> targets -> flat batch -> epochs x minibatches of update steps -> metrics), evaluation, episode
bookkeeping and the checkpoint codec, written once. An algorithm (`on_<framework>/reppo/`,
`on_<framework>/ppo/`) is one `Algorithm` value: the pieces that differ, with the same field names and
argument orders on both frameworks (JAX passes arrays and returns new values; torch passes tensors and
modules, and its update step mutates the state in place). `rng` is a JAX key or a torch.Generator.

The runner talks to a trainer through the `Trainer` protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np


class Algorithm(NamedTuple):
    name: str
    init_networks: Callable
    """(cfg, env, kernels, rng) -> (actor, critic): the part of the state the algorithm owns (JAX: rng is
    a key; torch: None, the networks draw from torch's seeded global generator)."""
    step_noise: Callable
    """(rng, num_envs, action_size) -> the Gaussian noise one rollout step consumes."""
    act: Callable
    """(actor, critic, norm, obs_raw, noise, kernels, cfg) -> (norm, obs, action, acted): the normaliser
    update with the observations acted on, the normalised observation, the action sent to the env
    (clipped) and what else the algorithm keeps from acting (or None)."""
    bootstrap: Callable
    """(actor, critic, norm, obs, action, acted, env_step, noise, kernels, cfg) -> the step's transition
    (the algorithm's NamedTuple, with at least `reward`, `terminated`, `truncated`)."""
    targets: Callable
    """(data [T, N, ...], kernels, cfg) -> the algorithm's targets (a NamedTuple with `returns`)."""
    flat_batch: Callable
    """(actor, data, targets, cfg) -> the update phase's batch, every field [T*N, ...]."""
    update_noise: Callable | None
    """(rng, batch_size, action_size, cfg) -> the noise one minibatch update step consumes (None when
    `update` replaces the update phase)."""
    update_step: Callable | None
    """JAX: (carry=(actor, critic, actor_opt, critic_opt), minibatch, noise, tx, kernels, cfg, dp)
    -> (carry, metrics); torch: (state, minibatch, noise, kernels, cfg, ranges, dp) -> metrics, the
    networks and optimisers of `state` stepped in place. None when `update` replaces the update phase.
    dp (on_<framework>/data_parallel.py, default one rank): the minibatch is this rank's part of the
    global one; every gradient goes through dp.mean (JAX) or dp.mean_grads (torch) before the optimiser,
    and any statistic of the minibatch that is not a mean the loss is linear in is pooled over the ranks
    (PPO's advantage normalisation)."""
    policy_mean: Callable
    """(actor, obs) -> the deterministic policy's pre-tanh action (what evaluation plays)."""
    window_objective: Callable | None = None
    """(data, cfg) -> J, a scalar of the rollout (RPO: SHAC's window return). When set, the trainer
    differentiates J through the physics with respect to the actions sent to the env and hands dJ/da
    [T, N, A] to `targets` as `data.action_grad`; None: the rollout is not differentiated."""
    make_optimizers: Callable | None = None
    """(cfg) -> (actor optimiser, critic optimiser) (JAX: optax transformations; torch: (cfg, actor, critic,
    device) -> optimisers). None: Adam at cfg.lr after the global-norm clip, for both."""
    update: Callable | None = None
    """The whole update phase, when the actor and critic take different epochs (RPO). JAX:
    (carry, batch, key, (actor_tx, critic_tx), kernels, cfg, dp) -> (carry, metrics); torch:
    (state, batch, kernels, cfg, ranges, dp) -> metrics (dp as for update_step). None: the trainer's
    epochs x minibatches of `update_step`."""


# The update phase's step counts, logged by every algorithm on both frameworks: steps skipped for a non-finite
# loss, gradient or update (the train state keeps its values), and steps applied. The runner stops a run
# whose every step was skipped for cfg.max_skipped_iterations iterations in a row.
SKIPPED_STEPS, APPLIED_STEPS = "update/skipped_steps", "update/applied_steps"

# Metrics that count events; summed over data-parallel ranks, where every other metric (a mean over an
# equal-sized batch) is averaged.
COUNT_METRICS = frozenset({"train/episodes", "train/nonfinite", "actor/nonfinite_action_grads"})


class EvalResult(NamedTuple):
    """One evaluation: the mean undiscounted return of one full episode per fresh env, and its standard
    error std / sqrt(N), which says how far apart two evaluations must be to differ."""
    mean: float
    stderr: float


def eval_result(returns) -> EvalResult:
    """Per-env episode returns [N] -> EvalResult (sample std, ddof 1; a single env has stderr 0)."""
    r = np.asarray(returns, np.float64)
    stderr = float(r.std(ddof=1) / np.sqrt(r.size)) if r.size > 1 else 0.0
    return EvalResult(float(r.mean()), stderr)


class Trainer(Protocol):
    """What the runner (reppo_fast.runner) needs of a framework's trainer."""

    processes: int
    """How many processes run this training (several under torchrun or multi-host JAX)."""

    def init_state(self, seed: int) -> Any: ...

    def any_process(self, flag: bool) -> bool:
        """flag, or-ed over the processes (a collective when there are several: every process calls it)."""
        ...

    def iteration(self, state: Any) -> tuple[Any, dict]:
        """One iteration: (state, metrics name -> scalar on the device)."""
        ...

    def iterations(self, state: Any, n: int) -> tuple[Any, Any]:
        """n <= cfg.iterations_per_dispatch iterations handed to the device at once, with no host sync
        between them: (state, their metrics, on the device). JAX donates `state`: the caller must use the
        returned one."""
        ...

    def to_host(self, metrics: Any, n: int) -> dict[str, np.ndarray]:
        """The metrics of `iterations` as name -> [n] numpy array, in one device-to-host transfer."""
        ...

    def evaluate(self, state: Any, seed: int, iteration: int) -> EvalResult: ...

    def policy(self, state: Any) -> Callable[[np.ndarray], np.ndarray]:
        """The deterministic policy `evaluate` plays, as a host function: raw observations [N, O] -> actions
        [N, A] (numpy), normaliser statistics frozen at `state`'s (videos play it step by step)."""
        ...

    def describe(self) -> dict: ...

    def to_arrays(self, state: Any) -> dict[str, np.ndarray]: ...

    def from_arrays(self, template: Any, arrays: dict[str, np.ndarray]) -> Any: ...
