"""REPPO on the JAX path: one jitted function per iteration (rollout, lambda-returns, update).

An iteration has no host round-trip inside: rollout and epochs x minibatches are lax.scans. The host loop
(reppo_fast.runner) calls `iteration`, `evaluate` and the checkpoint hooks.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from reppo_fast.on_jax import networks as nets
from reppo_fast.on_jax.losses import Batch, actor_loss, critic_loss
from reppo_fast.on_jax.minibatches import scan_minibatches
from reppo_fast.on_jax.normalizer import norm_init
from reppo_fast.on_jax.rollout import RolloutCarry, evaluate, rollout
from reppo_fast.precision import matmul_precision
from reppo_fast.profiling import instrument_kernels


class TrainState(NamedTuple):
    actor: dict         # {"net": actor params, "log_alpha": [], "log_beta": []}
    critic: dict        # critic params
    actor_opt: Any      # optax state of the actor optimiser (also trains log_alpha, log_beta)
    critic_opt: Any
    rollout: RolloutCarry
    key: jnp.ndarray    # PRNG key (raw uint32[2], saved in checkpoints)
    iteration: jnp.ndarray  # [] int32 iterations completed


def make_optimizer(cfg) -> optax.GradientTransformation:
    """Adam, after a global-norm clip unless max_grad_norm is None."""
    if cfg.max_grad_norm is None:
        return optax.adam(cfg.lr)
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.lr))


def eval_key(seed: int, iteration: int):
    """The evaluation key: a function of (seed, iteration) only, so a resumed run evaluates alike."""
    return jax.random.fold_in(jax.random.PRNGKey(seed ^ 0x5EED), iteration)


class JaxReppo:
    """Holds the static pieces (config, envs, kernels) and the jitted functions over TrainState."""

    def __init__(self, cfg, env, eval_env, kernels):
        self.cfg, self.env, self.eval_env = cfg, env, eval_env
        # Inside jit a named_scope names the op's XLA ops, which become its NVTX range on GPU.
        self.kernels = instrument_kernels(kernels, jax.named_scope if cfg.profile else None)
        self.tx = make_optimizer(cfg)
        self.iteration = jax.jit(self._at_networks_precision(self._iteration))
        self._evaluate = jax.jit(self._at_networks_precision(lambda actor, norm, key: evaluate(
            lambda obs: self.policy_mean(actor, obs), norm, eval_env, key, cfg)))

    def _at_networks_precision(self, fn):
        """fn traced with the networks' matmuls at cfg.matmul_precision (the physics keeps its own)."""
        def traced(*args):
            with matmul_precision(self.cfg.matmul_precision):
                return fn(*args)
        return traced

    def init_state(self, seed: int) -> TrainState:
        env = self.env
        k_actor, k_critic, k_env, key = jax.random.split(jax.random.PRNGKey(seed), 4)
        actor, critic = self.init_networks(k_actor, k_critic)
        carry = RolloutCarry(env.reset(k_env), norm_init(env.obs_size),
                             jnp.zeros((env.num_envs,), jnp.float32))
        state = TrainState(actor, critic, self.tx.init(actor), self.tx.init(critic), carry, key,
                           jnp.zeros((), jnp.int32))
        # Committed to the device like the iteration's outputs, so `iteration` compiles once, not twice.
        return jax.device_put(state, jax.devices()[0])

    def init_networks(self, k_actor, k_critic):
        """(actor params with the multipliers, critic params): the part of the state each algorithm owns."""
        cfg, env = self.cfg, self.env
        hist0 = self.kernels.hl_gauss_hist(jnp.zeros((1,)), num_bins=cfg.num_bins, v_min=cfg.v_min,
                                           v_max=cfg.v_max, sigma_ratio=cfg.sigma_ratio)[0]
        actor = {"net": nets.init_actor(k_actor, env.obs_size, env.action_size, cfg.actor_hidden,
                                        cfg.actor_layers),
                 "log_alpha": jnp.log(jnp.float32(cfg.alpha_init)),
                 "log_beta": jnp.log(jnp.float32(cfg.beta_init))}
        return actor, nets.init_critic(k_critic, env.obs_size, env.action_size, cfg.critic_hidden, hist0)

    def describe(self) -> dict:
        """Framework facts for the run metadata."""
        return {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
                "matmul_precision": {"networks": self.cfg.matmul_precision,
                                     "physics": self.env.physics_precision}}

    @staticmethod
    def to_arrays(state: TrainState) -> dict[str, np.ndarray]:
        return state_to_arrays(state)

    @staticmethod
    def from_arrays(template: TrainState, arrays: dict[str, np.ndarray]) -> TrainState:
        return state_from_arrays(template, arrays)

    def evaluate(self, state: TrainState, seed: int, iteration: int) -> float:
        """Deterministic eval on fresh envs; the key depends only on (seed, iteration): resumable."""
        return float(self._evaluate(state.actor, state.rollout.norm, eval_key(seed, iteration)))

    @staticmethod
    def policy_mean(actor, obs):
        """The deterministic policy's pre-tanh action at normalised obs (what evaluation plays)."""
        return nets.actor_apply(actor["net"], obs)[0]

    # --- the jitted iteration -------------------------------------------------------------------------

    def _iteration(self, state: TrainState):
        cfg, kernels = self.cfg, self.kernels
        key, k_roll, k_update = jax.random.split(state.key, 3)
        with jax.named_scope("rollout"):
            carry, data, stats = rollout(state.actor, state.critic, state.rollout, k_roll, self.env,
                                         kernels, cfg)
        with jax.named_scope("returns"):
            returns = kernels.lambda_returns(data.soft_reward, data.next_value, data.terminated,
                                             data.truncated, gamma=cfg.gamma, lmbda=cfg.lmbda)
        with jax.named_scope("update"):
            batch = self._flatten(state.actor, data, returns)
            actor, critic, actor_opt, critic_opt, metrics = self._update(state, batch, k_update)
        metrics.update(train_metrics(stats, data.reward, returns))
        new_state = TrainState(actor, critic, actor_opt, critic_opt, carry, key, state.iteration + 1)
        return new_state, metrics

    def _flatten(self, actor, data, returns) -> Batch:
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), (data, returns))
        data, returns = flat
        # pi_old is the actor frozen at the start of the update phase.
        old_mean, old_log_std = nets.actor_apply(actor["net"], data.obs, self.cfg.log_std_min,
                                                 self.cfg.log_std_max)
        return Batch(data.obs, data.action, data.reward, data.terminated, data.truncated, returns,
                     data.next_features, old_mean, old_log_std)

    def _update(self, state: TrainState, batch: Batch, key):
        cfg, kernels, tx = self.cfg, self.kernels, self.tx
        batch_size, action_size = batch.obs.shape[0] // cfg.num_minibatches, batch.action.shape[-1]

        def minibatch(carry, mb, k):
            actor, critic, actor_opt, critic_opt = carry
            with jax.named_scope("update/critic"):
                (c_loss, c_metrics), c_grad = jax.value_and_grad(critic_loss, has_aux=True)(
                    critic, mb, kernels, cfg)
                c_upd, critic_opt = tx.update(c_grad, critic_opt, critic)
                critic = optax.apply_updates(critic, c_upd)
            with jax.named_scope("update/actor"):
                k_noise, k_old = jax.random.split(k)
                noise = jax.random.normal(k_noise, (batch_size, action_size))
                old_noise = (jax.random.normal(k_old, (cfg.kl_samples, batch_size, action_size))
                             if cfg.kl_estimator == "sampled" else None)
                (a_loss, a_metrics), a_grad = jax.value_and_grad(actor_loss, has_aux=True)(
                    actor, critic, mb, noise, old_noise, kernels, cfg)
                a_upd, actor_opt = tx.update(a_grad, actor_opt, actor)
                actor = optax.apply_updates(actor, a_upd)
            metrics = {"critic/loss": c_loss, "actor/loss": a_loss,
                       "critic/grad_norm": optax.tree.norm(c_grad),
                       "actor/grad_norm": optax.tree.norm(a_grad), **c_metrics, **a_metrics}
            return (actor, critic, actor_opt, critic_opt), metrics

        carry = (state.actor, state.critic, state.actor_opt, state.critic_opt)
        carry, metrics = scan_minibatches(minibatch, carry, batch, key, cfg.num_epochs, cfg.num_minibatches)
        return (*carry, metrics)


def train_metrics(stats: dict, reward, returns) -> dict:
    """The rollout's episode statistics, mean reward and mean return, as logged by every algorithm."""
    episodes = jnp.maximum(stats["episodes"], 1)
    return {"train/episode_return": stats["episode_return_sum"] / episodes,
            "train/episodes": stats["episodes"], "train/nonfinite": stats["nonfinite"], "train/reward": jnp.mean(reward),
            "train/returns": jnp.mean(returns)}


def state_to_arrays(state: TrainState) -> dict[str, np.ndarray]:
    """Flatten the train state to {path: array} for checkpoints (leaf paths are stable names)."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def state_from_arrays(template: TrainState, arrays: dict[str, np.ndarray]) -> TrainState:
    """Inverse of state_to_arrays, checked leaf by leaf against a freshly initialised template."""
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, ref in paths:
        name = jax.tree_util.keystr(path)
        if name not in arrays:
            raise ValueError(f"checkpoint lacks {name}: it was written by a different config or version")
        arr = arrays[name]
        if arr.shape != ref.shape or arr.dtype != ref.dtype:
            raise ValueError(f"checkpoint entry {name} is {arr.dtype}{list(arr.shape)}, expected "
                             f"{ref.dtype}{list(ref.shape)}: the config differs from the checkpoint's")
        leaves.append(jnp.asarray(arr))
    return jax.tree_util.tree_unflatten(treedef, leaves)
