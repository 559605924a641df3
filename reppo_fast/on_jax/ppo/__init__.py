"""PPO on the JAX path, the paper's baseline (docs/algorithms.md section 10): the trainer's `ALGORITHM`.

Act with the current policy and keep what the clipped surrogate and GAE need. GAE is the lambda-return
minus the value: with next_values V(s_{t+1}) of the true next observations,
G_t - V(s_t) = delta_t + gamma lmbda (G_{t+1} - V(s_{t+1})) = sum_k (gamma lmbda)^k delta_{t+k} within an
episode, so advantages come from the `lambda_returns` op, once per iteration with the acting value network
(as CleanRL; Brax recomputes it per minibatch). (The running normaliser moves between steps, so
next_values[t] and values[t+1] see s_{t+1} through slightly different statistics; the recursion above uses
next_values[t], the lambda-return's own bootstrap.) Update step: one joint step on the PPO loss.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from reppo_fast.algorithm import Algorithm
from reppo_fast.on_jax.common import norm_update, normalize
from reppo_fast.on_jax.data_parallel import SINGLE
from reppo_fast.on_jax.ppo import networks as nets
from reppo_fast.on_jax.ppo.losses import PpoBatch, gaussian_log_prob, ppo_loss


class PpoTransition(NamedTuple):
    """One rollout, every field [T, N, ...] (T = num_steps, N = num_envs)."""
    obs: jnp.ndarray         # [T, N, O] normalised s_t (with the statistics of step t)
    raw_action: jnp.ndarray  # [T, N, A] pre-tanh action u_t; the env got clip(tanh(u_t))
    log_prob: jnp.ndarray    # [T, N] log N(u_t; mean, std) of the acting policy
    value: jnp.ndarray       # [T, N] V(s_t)
    reward: jnp.ndarray      # [T, N] raw env reward r_t
    terminated: jnp.ndarray  # [T, N] bool
    truncated: jnp.ndarray   # [T, N] bool
    next_value: jnp.ndarray  # [T, N] V(s_{t+1}) of the true next observation (the final one at a reset)


class Acted(NamedTuple):
    raw_action: jnp.ndarray  # [N, A] u
    log_prob: jnp.ndarray    # [N] log N(u; mean, std)
    value: jnp.ndarray       # [N] V(s)


class Targets(NamedTuple):
    returns: jnp.ndarray    # [T, N] G_t = lambda-return of the scaled rewards (the value target)
    advantage: jnp.ndarray  # [T, N] A_t = G_t - V(s_t)


def init_networks(cfg, env, kernels, keys):
    """(policy params, value params); keys = (actor key, critic key). The policy's std form is
    cfg.ppo.policy_std (on_jax.ppo.networks)."""
    del kernels
    k_actor, k_critic = keys
    return (nets.init_actor(k_actor, env.obs_size, env.action_size, cfg.actor_hidden, cfg.actor_hidden_blocks,
                            cfg.ppo.policy_std),
            nets.init_critic(k_critic, env.obs_size, cfg.critic_hidden, cfg.critic_hidden_blocks))


def step_noise(key, num_envs: int, action_size: int):
    """[N, A]: the action's draw."""
    return jax.random.normal(key, (num_envs, action_size), jnp.float32)


def act(actor, critic, norm, obs_raw, noise, kernels, cfg):
    """Normaliser update, u ~ N(mean, std), a = clip(tanh u); keeps u, log N(u) and V(s)."""
    norm = norm_update(norm, obs_raw) if cfg.obs_norm else norm
    obs = normalize(norm, obs_raw, cfg.obs_norm)
    mean, log_std = nets.actor_apply(actor, obs)
    raw_action = mean + jnp.exp(log_std) * noise
    action = jnp.clip(kernels.tanh_normal(mean, log_std, noise).action, -cfg.action_clip, cfg.action_clip)
    acted = Acted(raw_action, gaussian_log_prob(mean, log_std, raw_action), nets.critic_apply(critic, obs))
    return norm, obs, action, acted


def bootstrap(actor, critic, norm, obs, action, acted: Acted, env_step, noise, kernels, cfg) -> PpoTransition:
    """V(s_{t+1}) of the true next observation."""
    del actor, action, noise, kernels
    next_value = nets.critic_apply(critic, normalize(norm, env_step.next_obs, cfg.obs_norm))
    return PpoTransition(obs, acted.raw_action, acted.log_prob, acted.value, env_step.reward,
                         env_step.terminated, env_step.truncated, next_value)


def targets(data: PpoTransition, kernels, cfg) -> Targets:
    """G = lambda_returns(reward_scaling * r, V(s_{t+1})), A = G - V(s_t)."""
    returns = kernels.lambda_returns(cfg.ppo.reward_scaling * data.reward, data.next_value, data.terminated,
                                     data.truncated, gamma=cfg.gamma, lmbda=cfg.lmbda)
    return Targets(returns, returns - data.value)


def flat_batch(actor, data: PpoTransition, tgt: Targets, cfg) -> PpoBatch:
    del actor, cfg
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]),
                        PpoBatch(data.obs, data.raw_action, data.log_prob, tgt.advantage, tgt.returns))


def update_noise(key, batch_size: int, action_size: int, cfg):
    """[B, A]: the one reparameterised sample per state of the entropy estimate."""
    del cfg
    return jax.random.normal(key, (batch_size, action_size))


def update_step(carry, mb: PpoBatch, noise, tx, kernels, cfg, dp=SINGLE):
    """One joint step: the loss's two parts have disjoint parameters, so two Adams equal one over both
    (unclipped). The gradients are averaged over the data-parallel devices first."""
    actor, critic, actor_opt, critic_opt = carry
    (loss, metrics), (a_grad, c_grad) = jax.value_and_grad(ppo_loss, argnums=(0, 1), has_aux=True)(
        actor, critic, mb, noise, kernels, cfg, dp)
    a_grad, c_grad = dp.mean((a_grad, c_grad))
    a_upd, actor_opt = tx.update(a_grad, actor_opt, actor)
    c_upd, critic_opt = tx.update(c_grad, critic_opt, critic)
    metrics = {"loss": loss, "actor/grad_norm": optax.tree.norm(a_grad),
               "critic/grad_norm": optax.tree.norm(c_grad), **metrics}
    return (optax.apply_updates(actor, a_upd), optax.apply_updates(critic, c_upd), actor_opt,
            critic_opt), metrics


def policy_mean(actor, obs):
    return nets.actor_apply(actor, obs)[0]


ALGORITHM = Algorithm("ppo", init_networks, step_noise, act, bootstrap, targets, flat_batch, update_noise,
                      update_step, policy_mean)
