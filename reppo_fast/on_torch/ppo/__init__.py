"""PPO on the torch path (docs/algorithms.md section 10), the twin of on_jax/ppo: the `ALGORITHM` the trainer
runs (GAE = lambda-return minus value; see on_jax/ppo for the derivation), with the same fields, names and
maths. One joint loss per minibatch; each network steps its own Adam (the loss's parts have disjoint
parameters, so this equals one Adam over both when unclipped).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from reppo_fast.algorithm import Algorithm
from reppo_fast.on_torch.common import clip_grads_, norm_update, normalize
from reppo_fast.on_torch.data_parallel import SINGLE
from reppo_fast.on_torch.ppo import networks as nets
from reppo_fast.on_torch.ppo.losses import PpoBatch, gaussian_log_prob, ppo_loss


class PpoTransition(NamedTuple):
    """One rollout step [N, ...] (stacked: [T, N, ...]); see on_jax.ppo.PpoTransition."""
    obs: torch.Tensor
    raw_action: torch.Tensor
    log_prob: torch.Tensor
    value: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_value: torch.Tensor


class Acted(NamedTuple):
    raw_action: torch.Tensor  # [N, A] u
    log_prob: torch.Tensor    # [N] log N(u; mean, std)
    value: torch.Tensor       # [N] V(s)


class Targets(NamedTuple):
    returns: torch.Tensor    # [T, N] G_t = lambda-return of the scaled rewards (the value target)
    advantage: torch.Tensor  # [T, N] A_t = G_t - V(s_t)


def init_networks(cfg, env, kernels, rng=None):
    """(policy, value network), made on the current default device (the trainer's); the policy's std form
    is cfg.ppo.policy_std (on_jax.ppo.networks)."""
    del kernels, rng  # torch's seeded global generator
    return (nets.init_actor(env.obs_size, env.action_size, cfg.actor_hidden, cfg.actor_hidden_blocks,
                            cfg.ppo.policy_std, cfg.precision),
            nets.init_critic(env.obs_size, cfg.critic_hidden, cfg.critic_hidden_blocks, cfg.precision))


def step_noise(generator: torch.Generator, num_envs: int, action_size: int):
    """[N, A]: the action's draw."""
    return torch.randn(num_envs, action_size, device=generator.device, generator=generator)


def act(actor, critic, norm, obs_raw, noise, kernels, cfg):
    """Normaliser update, u ~ N(mean, std), a = clip(tanh u); keeps u, log N(u) and V(s)."""
    norm = norm_update(norm, obs_raw) if cfg.obs_norm else norm
    obs = normalize(norm, obs_raw, cfg.obs_norm)
    mean, log_std = nets.actor_apply(actor, obs)
    raw_action = mean + torch.exp(log_std) * noise
    action = kernels.tanh_normal(mean, log_std, noise).action.clamp(-cfg.action_clip, cfg.action_clip)
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
    return PpoBatch(*(x.reshape((-1,) + x.shape[2:]) for x in (data.obs, data.raw_action, data.log_prob,
                                                                 tgt.advantage, tgt.returns)))


def update_noise(generator: torch.Generator, batch_size: int, action_size: int, cfg):
    """[B, A]: the one reparameterised sample per state of the entropy estimate."""
    del cfg
    return torch.randn(batch_size, action_size, device=generator.device, generator=generator)


def update_step(state, mb: PpoBatch, noise, kernels, cfg, ranges, dp=SINGLE) -> dict:
    """One joint PPO step; the gradients averaged over the data-parallel ranks (one bucket), then each
    network's clipped on its own, as the JAX path's two optax chains."""
    del ranges
    loss, metrics = ppo_loss(state.actor, state.critic, mb, noise, kernels, cfg, dp)
    a_params, c_params = list(state.actor.parameters()), list(state.critic.parameters())
    grads = dp.mean_grads(list(torch.autograd.grad(loss, a_params + c_params)))
    a_norm = clip_grads_(grads[:len(a_params)], cfg.max_grad_norm)
    c_norm = clip_grads_(grads[len(a_params):], cfg.max_grad_norm)
    for p, g in zip(a_params + c_params, grads):
        p.grad = g
    state.actor_opt.step()
    state.critic_opt.step()
    return {"loss": loss.detach(), "actor/grad_norm": a_norm, "critic/grad_norm": c_norm, **metrics}


def policy_mean(actor, obs):
    return nets.actor_apply(actor, obs)[0]


ALGORITHM = Algorithm("ppo", init_networks, step_noise, act, bootstrap, targets, flat_batch, update_noise,
                      update_step, policy_mean)
