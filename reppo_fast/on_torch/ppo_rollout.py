"""PPO rollout in PyTorch, the twin of on_jax.ppo_rollout (GAE = lambda-return minus value)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from reppo_fast.on_torch import ppo_networks as nets
from reppo_fast.on_torch.normalizer import NormState, normalize, norm_update
from reppo_fast.on_torch.ppo_losses import gaussian_log_prob
from reppo_fast.on_torch.rollout import RolloutCarry


class PpoTransition(NamedTuple):
    """One rollout, every field [T, N, ...] (see on_jax.ppo_rollout.PpoTransition)."""
    obs: torch.Tensor
    raw_action: torch.Tensor
    log_prob: torch.Tensor
    value: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_value: torch.Tensor


def act(actor, critic, norm: NormState, obs_raw, noise, kernels, cfg):
    """Normaliser update, u ~ N(mean, std), a = clip(tanh u). Returns (norm, obs, raw_action, action,
    log_prob of u, V(s))."""
    norm = norm_update(norm, obs_raw) if cfg.obs_norm else norm
    obs = normalize(norm, obs_raw, cfg.obs_norm)
    mean, log_std = nets.actor_apply(actor, obs)
    raw_action = mean + torch.exp(log_std) * noise
    action = kernels.tanh_normal(mean, log_std, noise).action.clamp(-cfg.action_clip, cfg.action_clip)
    return (norm, obs, raw_action, action, gaussian_log_prob(mean, log_std, raw_action),
            nets.critic_apply(critic, obs))


def bootstrap(critic, norm: NormState, next_obs_raw, cfg):
    """V(s_{t+1}) of the true next observation."""
    return nets.critic_apply(critic, normalize(norm, next_obs_raw, cfg.obs_norm))


@torch.no_grad()
def rollout(actor, critic, carry: RolloutCarry, env, generator, kernels, cfg, act_fn=act,
            bootstrap_fn=bootstrap):
    """Collect cfg.num_steps steps from `env` (a TorchVecEnv). Returns (carry, PpoTransition, stats)."""
    norm, ep_return = carry
    ret_sum, episodes, nonfinite = (torch.zeros((), device=env.device) for _ in range(3))
    steps = []
    for _ in range(cfg.num_steps):
        noise = torch.randn(env.num_envs, env.action_size, device=env.device, generator=generator)
        norm, obs, raw_action, action, log_prob, value = act_fn(actor, critic, norm, env.obs, noise, kernels,
                                                                cfg)
        out = env.step(action)
        next_value = bootstrap_fn(critic, norm, out.next_obs, cfg)
        done = out.terminated | out.truncated
        ep_return = ep_return + out.reward
        ret_sum += torch.where(done, ep_return, 0.0).sum()
        episodes += done.sum()
        nonfinite += out.nonfinite.sum()
        ep_return = torch.where(done, 0.0, ep_return)
        steps.append(PpoTransition(obs, raw_action, log_prob, value, out.reward, out.terminated,
                                   out.truncated, next_value))
    data = PpoTransition(*(torch.stack(field) for field in zip(*steps)))
    stats = {"episode_return_sum": ret_sum, "episodes": episodes, "nonfinite": nonfinite}
    return RolloutCarry(norm, ep_return), data, stats


def gae(data: PpoTransition, kernels, cfg):
    """(advantages, returns) [T, N]: G = lambda_returns(reward_scaling * r, V(s_{t+1})), A = G - V(s_t)."""
    returns = kernels.lambda_returns(cfg.reward_scaling * data.reward, data.next_value, data.terminated,
                                     data.truncated, gamma=cfg.gamma, lmbda=cfg.lmbda)
    return returns - data.value, returns
