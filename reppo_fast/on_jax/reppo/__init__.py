"""REPPO on the JAX path (docs/algorithms.md sections 3-6): the `ALGORITHM` the trainer runs.

Per rollout step: act with pi_old, step the env, sample a fresh a' ~ pi_old(.|s_{t+1}), evaluate the critic
there for the bootstrap value V_{t+1} and the aux target psi_t, and form the soft reward
r~_t = r_t - gamma * alpha * (1 - terminated_t) * log pi(a'|s_{t+1}). Targets: the soft lambda-returns.
Update step: one critic step, then one actor step against the just-updated critic.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from reppo_fast.algorithm import Algorithm
from reppo_fast.on_jax.common import norm_update, normalize
from reppo_fast.on_jax.data_parallel import SINGLE
from reppo_fast.on_jax.reppo import networks as nets
from reppo_fast.on_jax.reppo.losses import Batch, actor_loss, critic_loss, q_value


class Transition(NamedTuple):
    """One rollout, every field [T, N, ...] (T = num_steps, N = num_envs)."""
    obs: jnp.ndarray            # [T, N, O] normalised s_t (with the statistics of step t)
    action: jnp.ndarray         # [T, N, A] clipped action a_t
    reward: jnp.ndarray         # [T, N] raw env reward r_t
    soft_reward: jnp.ndarray    # [T, N] r~_t, the entropy-regularised reward
    terminated: jnp.ndarray     # [T, N] bool
    truncated: jnp.ndarray      # [T, N] bool
    next_value: jnp.ndarray     # [T, N] V_{t+1} = Q(s_{t+1}, a'), a' ~ pi_old
    next_features: jnp.ndarray  # [T, N, H] critic features at (s_{t+1}, a'): the aux target psi_t


class Targets(NamedTuple):
    returns: jnp.ndarray  # [T, N] soft lambda-returns G_t, the critic's target


def init_networks(cfg, env, kernels, keys):
    """(actor params with the multipliers, critic params); keys = (actor key, critic key)."""
    k_actor, k_critic = keys
    hist0 = kernels.hl_gauss_hist(jnp.zeros((1,)), num_bins=cfg.reppo.num_bins, v_min=cfg.reppo.v_min,
                                  v_max=cfg.reppo.v_max, sigma_ratio=cfg.reppo.sigma_ratio)[0]
    actor = {"net": nets.init_actor(k_actor, env.obs_size, env.action_size, cfg.actor_hidden,
                                    cfg.actor_hidden_blocks),
             "log_alpha": jnp.log(jnp.float32(cfg.reppo.alpha_init)),
             "log_beta": jnp.log(jnp.float32(cfg.reppo.beta_init))}
    return actor, nets.init_critic(k_critic, env.obs_size, env.action_size, cfg.critic_hidden, hist0)


def step_noise(key, num_envs: int, action_size: int):
    """[2, N, A]: the action's draw, then the bootstrap action a'`s."""
    k_act, k_next = jax.random.split(key)
    return jnp.stack([jax.random.normal(k, (num_envs, action_size), jnp.float32) for k in (k_act, k_next)])


def _policy(actor, obs, noise, kernels, cfg):
    mean, log_std = nets.actor_apply(actor["net"], obs, cfg.reppo.log_std_min, cfg.reppo.log_std_max)
    return kernels.tanh_normal(mean, log_std, noise)


def act(actor, critic, norm, obs_raw, noise, kernels, cfg):
    """Normaliser update with the observations acted on, then a ~ pi(.|s), clipped."""
    del critic
    norm = norm_update(norm, obs_raw) if cfg.obs_norm else norm
    obs = normalize(norm, obs_raw, cfg.obs_norm)
    action = jnp.clip(_policy(actor, obs, noise[0], kernels, cfg).action, -cfg.action_clip, cfg.action_clip)
    return norm, obs, action, None


def bootstrap(actor, critic, norm, obs, action, acted, env_step, noise, kernels, cfg) -> Transition:
    """a' ~ pi(.|s_{t+1}) at the TRUE next observation, V_{t+1} = Q(s_{t+1}, a'), psi_t and r~_t."""
    del acted
    next_obs = normalize(norm, env_step.next_obs, cfg.obs_norm)
    nxt = _policy(actor, next_obs, noise[1], kernels, cfg)
    next_value, next_features = q_value(critic, next_obs, nxt.action, kernels, cfg)
    alpha = jnp.exp(actor["log_alpha"])
    soft_reward = env_step.reward - cfg.gamma * alpha * jnp.where(env_step.terminated, 0.0, nxt.log_prob)
    return Transition(obs, action, env_step.reward, soft_reward, env_step.terminated, env_step.truncated,
                      next_value, next_features)


def targets(data: Transition, kernels, cfg) -> Targets:
    return Targets(kernels.lambda_returns(data.soft_reward, data.next_value, data.terminated, data.truncated,
                                          gamma=cfg.gamma, lmbda=cfg.lmbda))


def flat_batch(actor, data: Transition, tgt: Targets, cfg) -> Batch:
    """The rollout as [T*N, ...] rows, with pi_old (the actor frozen at the start of the update phase)."""
    data, returns = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), (data, tgt.returns))
    old_mean, old_log_std = nets.actor_apply(actor["net"], data.obs, cfg.reppo.log_std_min,
                                             cfg.reppo.log_std_max)
    return Batch(data.obs, data.action, data.reward, data.terminated, data.truncated, returns,
                 data.next_features, old_mean, old_log_std)


def update_noise(key, batch_size: int, action_size: int, cfg):
    """(the actor's action draw [B, A], the KL's draws [S, B, A] or None for the analytic KL)."""
    k_noise, k_old = jax.random.split(key)
    noise = jax.random.normal(k_noise, (batch_size, action_size))
    old_noise = (jax.random.normal(k_old, (cfg.reppo.kl_samples, batch_size, action_size))
                 if cfg.reppo.kl_estimator == "sampled" else None)
    return noise, old_noise


def update_step(carry, mb: Batch, noise, tx, kernels, cfg, dp=SINGLE):
    """One critic step, then one actor step (with the multipliers) against the updated critic; each gradient
    averaged over the data-parallel devices first (the multipliers' too: their losses are linear in the
    batch means of the entropy and the KL, so the averaged gradient is the whole batch's)."""
    actor, critic, actor_opt, critic_opt = carry
    with jax.named_scope("update/critic"):
        (c_loss, c_metrics), c_grad = jax.value_and_grad(critic_loss, has_aux=True)(critic, mb, kernels, cfg)
        c_grad = dp.mean(c_grad)
        c_upd, critic_opt = tx.update(c_grad, critic_opt, critic)
        critic = optax.apply_updates(critic, c_upd)
    with jax.named_scope("update/actor"):
        (a_loss, a_metrics), a_grad = jax.value_and_grad(actor_loss, has_aux=True)(
            actor, critic, mb, noise[0], noise[1], kernels, cfg)
        a_grad = dp.mean(a_grad)
        a_upd, actor_opt = tx.update(a_grad, actor_opt, actor)
        actor = optax.apply_updates(actor, a_upd)
    metrics = {"critic/loss": c_loss, "actor/loss": a_loss, "critic/grad_norm": optax.tree.norm(c_grad),
               "actor/grad_norm": optax.tree.norm(a_grad), **c_metrics, **a_metrics}
    return (actor, critic, actor_opt, critic_opt), metrics


def policy_mean(actor, obs):
    return nets.actor_apply(actor["net"], obs)[0]


ALGORITHM = Algorithm("reppo", init_networks, step_noise, act, bootstrap, targets, flat_batch, update_noise,
                      update_step, policy_mean)
