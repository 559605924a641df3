"""REPPO on the torch path (docs/algorithms.md sections 3-6), the twin of on_jax/reppo: the `ALGORITHM` the
trainer runs, with the same fields, names and maths. `act` and `bootstrap` are pure tensor code with no
host sync (the trainer compiles them whole); `update_step` steps the state's networks in place.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from reppo_fast.algorithm import Algorithm
from reppo_fast.on_torch.common import norm_update, normalize, step_optimizer
from reppo_fast.on_torch.data_parallel import SINGLE
from reppo_fast.on_torch.reppo import networks as nets
from reppo_fast.on_torch.reppo.losses import Batch, actor_loss, critic_loss, q_value


class Transition(NamedTuple):
    """One rollout step [N, ...] (stacked: [T, N, ...]); see on_jax.reppo.Transition."""
    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    soft_reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_value: torch.Tensor
    next_features: torch.Tensor


class Targets(NamedTuple):
    returns: torch.Tensor  # [T, N] soft lambda-returns G_t, the critic's target


def init_networks(cfg, env, kernels, rng=None):
    """(actor with the multipliers, critic), made on the current default device (the trainer's)."""
    del rng  # torch's seeded global generator
    device = torch.get_default_device()
    hist0 = kernels.hl_gauss_hist(torch.zeros(1, device=device), num_bins=cfg.reppo.num_bins,
                                  v_min=cfg.reppo.v_min, v_max=cfg.reppo.v_max,
                                  sigma_ratio=cfg.reppo.sigma_ratio)[0]
    return (nets.init_actor(env.obs_size, env.action_size, cfg.actor_hidden, cfg.actor_hidden_blocks,
                            cfg.reppo.alpha_init, cfg.reppo.beta_init, cfg.precision),
            nets.init_critic(env.obs_size, env.action_size, cfg.critic_hidden, hist0, cfg.precision))


def step_noise(generator: torch.Generator, num_envs: int, action_size: int):
    """[2, N, A]: the action's draw, then the bootstrap action a'`s."""
    return torch.randn(2, num_envs, action_size, device=generator.device, generator=generator)


def _policy(actor, obs, noise, kernels, cfg):
    mean, log_std = nets.actor_apply(actor.net, obs, cfg.reppo.log_std_min, cfg.reppo.log_std_max)
    return kernels.tanh_normal(mean, log_std, noise)


def act(actor, critic, norm, obs_raw, noise, kernels, cfg):
    """Normaliser update with the observations acted on, then a ~ pi(.|s), clipped."""
    del critic
    norm = norm_update(norm, obs_raw) if cfg.obs_norm else norm
    obs = normalize(norm, obs_raw, cfg.obs_norm)
    action = _policy(actor, obs, noise[0], kernels, cfg).action.clamp(-cfg.action_clip, cfg.action_clip)
    return norm, obs, action, None


def bootstrap(actor, critic, norm, obs, action, acted, env_step, noise, kernels, cfg) -> Transition:
    """a' ~ pi(.|s_{t+1}) at the TRUE next observation, V_{t+1} = Q(s_{t+1}, a'), psi_t and r~_t."""
    del acted
    next_obs = normalize(norm, env_step.next_obs, cfg.obs_norm)
    nxt = _policy(actor, next_obs, noise[1], kernels, cfg)
    next_value, next_features = q_value(critic, next_obs, nxt.action, kernels, cfg)
    alpha = actor.log_alpha.exp()
    soft_reward = env_step.reward - cfg.gamma * alpha * torch.where(env_step.terminated, 0.0, nxt.log_prob)
    return Transition(obs, action, env_step.reward, soft_reward, env_step.terminated, env_step.truncated,
                      next_value, next_features)


def targets(data: Transition, kernels, cfg) -> Targets:
    return Targets(kernels.lambda_returns(data.soft_reward, data.next_value, data.terminated, data.truncated,
                                          gamma=cfg.gamma, lmbda=cfg.lmbda))


@torch.no_grad()
def flat_batch(actor, data: Transition, tgt: Targets, cfg) -> Batch:
    """The rollout as [T*N, ...] rows, with pi_old (the actor frozen at the start of the update phase)."""
    def flat(x):
        return x.reshape((-1,) + x.shape[2:])

    obs = flat(data.obs)
    old_mean, old_log_std = nets.actor_apply(actor.net, obs, cfg.reppo.log_std_min, cfg.reppo.log_std_max)
    return Batch(obs=obs, action=flat(data.action), reward=flat(data.reward),
                 terminated=flat(data.terminated), truncated=flat(data.truncated), returns=flat(tgt.returns),
                 next_features=flat(data.next_features), old_mean=old_mean, old_log_std=old_log_std)


def update_noise(generator: torch.Generator, batch_size: int, action_size: int, cfg):
    """(the actor's action draw [B, A], the KL's draws [S, B, A] or None for the analytic KL)."""
    kl_samples = cfg.reppo.kl_samples if cfg.reppo.kl_estimator == "sampled" else 0
    noise = torch.randn(1 + kl_samples, batch_size, action_size, device=generator.device, generator=generator)
    return noise[0], (noise[1:] if cfg.reppo.kl_estimator == "sampled" else None)


def update_step(state, mb: Batch, noise, kernels, cfg, ranges, dp=SINGLE) -> dict:
    """One critic step, then one actor step (with the multipliers) against the updated critic; each gradient
    averaged over the data-parallel ranks first (see on_jax.reppo.update_step)."""
    with ranges("update/critic"):
        c_loss, c_metrics = critic_loss(state.critic, mb, kernels, cfg)
        c_norm = step_optimizer(c_loss, list(state.critic.parameters()), state.critic_opt, cfg.max_grad_norm,
                                dp)
    with ranges("update/actor"):
        a_loss, a_metrics = actor_loss(state.actor, state.critic, mb, noise[0], noise[1], kernels, cfg)
        a_norm = step_optimizer(a_loss, list(state.actor.parameters()), state.actor_opt, cfg.max_grad_norm,
                                dp)
    return {"critic/loss": c_loss.detach(), "actor/loss": a_loss.detach(), "critic/grad_norm": c_norm,
            "actor/grad_norm": a_norm, **c_metrics, **a_metrics}


def policy_mean(actor, obs):
    return nets.actor_apply(actor.net, obs)[0]


ALGORITHM = Algorithm("reppo", init_networks, step_noise, act, bootstrap, targets, flat_batch, update_noise,
                      update_step, policy_mean)
