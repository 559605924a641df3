"""RPO on the JAX path (experimental; docs/algorithms.md section 11, ../shared/rpo_spec.md): the trainer's
`ALGORITHM`.

Per window of H = cfg.num_steps steps the trainer rolls out theta_old with the env states persisting
across iterations, and differentiates `window_objective` (SHAC's window return, bootstrapped by the target
critics) through the physics with respect to the actions a_k sent to the env. `targets` turns dJ/da into
g_k = dJ/dz_k (z the pre-tanh action: a = clip(tanh z)) and sanitises it per sample. `update` then runs
rpo_epochs passes of the masked reparameterised surrogate, which reuses g_k on actions regenerated from the
current policy, then num_epochs x num_minibatches of the V critics on TD(lambda) targets, then moves the
target critics. The observation normaliser moves with every step as for the other algorithms, its statistics
outside the differentiated graph.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from reppo_fast.algorithm import APPLIED_STEPS, SKIPPED_STEPS, Algorithm
from reppo_fast.on_jax.common import norm_update, normalize, scan_minibatches
from reppo_fast.on_jax.data_parallel import SINGLE
from reppo_fast.on_jax.rpo import losses
from reppo_fast.on_jax.rpo import networks as nets
from reppo_fast.on_jax.rpo.losses import RpoBatch


class RpoTransition(NamedTuple):
    """One window, every field [T, N, ...]."""
    obs: jnp.ndarray          # [T, N, O] normalised s_k
    z: jnp.ndarray            # [T, N, A] pre-tanh action
    mean_old: jnp.ndarray     # [T, N, A]
    log_std_old: jnp.ndarray  # [T, N, A]
    reward: jnp.ndarray       # [T, N]
    terminated: jnp.ndarray   # [T, N] bool
    truncated: jnp.ndarray    # [T, N] bool
    next_value: jnp.ndarray   # [T, N] V_target(s_{k+1}) of the true next observation (differentiable)
    action_grad: jnp.ndarray  # [T, N, A] dJ/da_k, filled in by the trainer after the backward pass


class Acted(NamedTuple):
    z: jnp.ndarray         # [N, A]
    mean: jnp.ndarray      # [N, A]
    log_std: jnp.ndarray   # [N, A]


class Targets(NamedTuple):
    returns: jnp.ndarray      # [T, N] TD(lambda) targets of the V critics
    action_grad: jnp.ndarray  # [T, N, A] g = dJ/dz, sanitised and clipped
    nonfinite: jnp.ndarray    # [T, N] bool: g was non-finite there (zeroed)


def init_networks(cfg, env, kernels, keys):
    """(actor params, {"online": C critics, "target": their copy}); keys = (actor key, critic key)."""
    del kernels
    k_actor, k_critic = keys
    rpo = cfg.rpo
    actor = nets.init_actor(k_actor, env.obs_size, env.action_size, cfg.actor_hidden, cfg.actor_hidden_blocks,
                            rpo.rpo_std, rpo.rpo_log_std_init)
    return actor, nets.init_critics(k_critic, env.obs_size, cfg.critic_hidden, cfg.critic_hidden_blocks,
                                    rpo.rpo_num_critics)


def make_optimizers(cfg):
    """AdamW (rpo_adam_b1, rpo_adam_b2, rpo_weight_decay) after the global clip: the actor at lr, the online
    critics at rpo_critic_lr; the target critics are not trained (they follow `update`'s Polyak step)."""
    rpo = cfg.rpo

    def adamw(lr):
        opt = optax.adamw(lr, b1=rpo.rpo_adam_b1, b2=rpo.rpo_adam_b2, weight_decay=rpo.rpo_weight_decay)
        if cfg.max_grad_norm is None:
            return opt
        return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), opt)

    def labels(critic):
        return {"online": jax.tree.map(lambda _: "train", critic["online"]),
                "target": jax.tree.map(lambda _: "frozen", critic["target"])}

    critic_tx = optax.multi_transform({"train": adamw(rpo.rpo_critic_lr), "frozen": optax.set_to_zero()},
                                      labels)
    return adamw(cfg.lr), critic_tx


def step_noise(key, num_envs: int, action_size: int):
    """[N, A]: eps of z = mu + sigma eps."""
    return jax.random.normal(key, (num_envs, action_size), jnp.float32)


def act(actor, critic, norm, obs_raw, noise, kernels, cfg):
    """Normaliser update (its statistics outside the graph), z = mu + sigma eps, a = clip(tanh z)."""
    del critic, kernels
    norm = jax.lax.stop_gradient(norm_update(norm, obs_raw) if cfg.obs_norm else norm)
    obs = normalize(norm, obs_raw, cfg.obs_norm)
    mean, log_std = nets.actor_apply(actor, obs)
    z = mean + jnp.exp(log_std) * noise
    action = jnp.clip(jnp.tanh(z), -cfg.action_clip, cfg.action_clip)
    return norm, obs, action, Acted(z, mean, log_std)


def bootstrap(actor, critic, norm, obs, action, acted: Acted, env_step, noise, kernels, cfg) -> RpoTransition:
    """V_target of the true next observation, differentiable (the window objective bootstraps with it)."""
    del actor, noise, kernels
    next_value = nets.value(critic["target"], normalize(norm, env_step.next_obs, cfg.obs_norm))
    return RpoTransition(obs, acted.z, acted.mean, acted.log_std, env_step.reward, env_step.terminated,
                         env_step.truncated, next_value, jnp.zeros_like(action))


def window_objective(data: RpoTransition, cfg):
    return losses.window_objective(data.reward, data.terminated, data.truncated, data.next_value, cfg.gamma)


def targets(data: RpoTransition, kernels, cfg) -> Targets:
    """TD(lambda) targets from V_target(s'), and g = dJ/dz sanitised per sample."""
    returns = kernels.lambda_returns(data.reward, data.next_value, data.terminated, data.truncated,
                                     gamma=cfg.gamma, lmbda=cfg.lmbda)
    g = losses.pre_tanh_grad(data.action_grad, data.z, cfg.action_clip)
    g, nonfinite = losses.sanitise(g, cfg.rpo.rpo_grad_clip)
    return Targets(returns, g, nonfinite)


def flat_batch(actor, data: RpoTransition, tgt: Targets, cfg) -> RpoBatch:
    del actor, cfg
    batch = RpoBatch(data.obs, data.z, data.mean_old, data.log_std_old, tgt.action_grad, tgt.returns,
                     tgt.nonfinite)
    return jax.tree.map(lambda x: jax.lax.stop_gradient(x.reshape((-1,) + x.shape[2:])), batch)


def update(carry, batch: RpoBatch, key, txs, kernels, cfg, dp=SINGLE):
    """rpo_epochs x rpo_minibatches actor steps, num_epochs x num_minibatches critic steps (each gradient
    averaged over the data-parallel devices), then target <- alpha target + (1 - alpha) online."""
    del kernels
    actor, critic, actor_opt, critic_opt = carry
    actor_tx, critic_tx = txs
    k_actor, k_critic = jax.random.split(key)

    def actor_step(c, mb, k):
        del k
        params, opt = c
        (loss, metrics), grad = jax.value_and_grad(losses.actor_loss, has_aux=True)(params, mb, cfg.rpo)
        grad = dp.mean(grad)
        upd, opt = actor_tx.update(grad, opt, params)
        return (optax.apply_updates(params, upd), opt), {"actor/loss": loss,
                                                         "actor/grad_norm": optax.tree.norm(grad), **metrics}

    def critic_step(c, mb, k):
        del k
        params, opt = c
        (_, metrics), grad = jax.value_and_grad(
            lambda online: losses.critic_loss(online, mb), has_aux=True)(params["online"])
        grad = dp.mean(grad)
        grad = {"online": grad, "target": jax.tree.map(jnp.zeros_like, params["target"])}
        upd, opt = critic_tx.update(grad, opt, params)
        return (optax.apply_updates(params, upd), opt), {"critic/grad_norm": optax.tree.norm(grad), **metrics}

    (actor, actor_opt), a_metrics = scan_minibatches(actor_step, (actor, actor_opt), batch, k_actor,
                                                     cfg.rpo.rpo_epochs, cfg.rpo.rpo_minibatches, dp)
    (critic, critic_opt), c_metrics = scan_minibatches(critic_step, (critic, critic_opt), batch, k_critic,
                                                       cfg.num_epochs, cfg.num_minibatches, dp)
    # The actor's steps and the critic's, together.
    counts = {k: a_metrics.pop(k) + c_metrics.pop(k) for k in (SKIPPED_STEPS, APPLIED_STEPS)}
    alpha = cfg.rpo.rpo_target_alpha
    target = jax.tree.map(lambda t, o: alpha * t + (1.0 - alpha) * o, critic["target"], critic["online"])
    critic = {"online": critic["online"], "target": target}
    metrics = {**a_metrics, **c_metrics, **counts, "actor/nonfinite_action_grads": jnp.sum(batch.nonfinite),
               "actor/action_grad_norm": jnp.mean(jnp.linalg.norm(batch.action_grad, axis=-1))}
    return (actor, critic, actor_opt, critic_opt), metrics


def policy_mean(actor, obs):
    return nets.actor_apply(actor, obs)[0]


ALGORITHM = Algorithm("rpo", init_networks, step_noise, act, bootstrap, targets, flat_batch, None, None,
                      policy_mean, window_objective=window_objective, make_optimizers=make_optimizers,
                      update=update)
