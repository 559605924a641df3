"""Rollout and evaluation in PyTorch (spec section 3), the twin of on_jax.rollout.

The env is stepped from Python (torch envs are stateful); everything else per step is two policy
evaluations and one critic evaluation, which `Acting` can hand to torch.compile.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from reppo_fast.on_torch import networks as nets
from reppo_fast.on_torch.losses import q_value
from reppo_fast.on_torch.normalizer import NormState, normalize, norm_update


class Transition(NamedTuple):
    """One rollout, every field [T, N, ...] (see on_jax.rollout.Transition)."""
    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    soft_reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_value: torch.Tensor
    next_features: torch.Tensor


class RolloutCarry(NamedTuple):
    norm: NormState
    ep_return: torch.Tensor  # [N] running undiscounted return of each env's current episode


def _policy(actor, obs, noise, kernels, cfg):
    mean, log_std = nets.actor_apply(actor.net, obs, cfg.log_std_min, cfg.log_std_max)
    return kernels.tanh_normal(mean, log_std, noise)


def act(actor, norm: NormState, obs_raw, noise, kernels, cfg):
    """Normaliser update with the observations seen, then a ~ pi(.|s). Returns (norm, obs, action)."""
    norm = norm_update(norm, obs_raw) if cfg.obs_norm else norm
    obs = normalize(norm, obs_raw, cfg.obs_norm)
    action = _policy(actor, obs, noise, kernels, cfg).action.clamp(-cfg.action_clip, cfg.action_clip)
    return norm, obs, action


def bootstrap(actor, critic, norm: NormState, next_obs_raw, reward, terminated, noise, kernels, cfg):
    """a' ~ pi(.|s_{t+1}), V_{t+1} = Q(s_{t+1}, a'), psi_t, and r~_t = r_t - gamma alpha (1-term) log pi(a')."""
    next_obs = normalize(norm, next_obs_raw, cfg.obs_norm)
    nxt = _policy(actor, next_obs, noise, kernels, cfg)
    next_value, next_features = q_value(critic, next_obs, nxt.action, kernels, cfg)
    alpha = actor.log_alpha.exp()
    soft_reward = reward - cfg.gamma * alpha * torch.where(terminated, 0.0, nxt.log_prob)
    return next_value, next_features, soft_reward


@torch.no_grad()
def rollout(actor, critic, carry: RolloutCarry, env, generator, kernels, cfg, act_fn=act,
            bootstrap_fn=bootstrap):
    """Collect cfg.num_steps steps from `env` (a TorchVecEnv). Returns (carry, Transition, stats)."""
    num_steps, n, a = cfg.num_steps, env.num_envs, env.action_size
    steps = []
    norm, ep_return = carry
    ret_sum = torch.zeros((), device=env.device)
    episodes = torch.zeros((), device=env.device)
    nonfinite = torch.zeros((), device=env.device)
    for _ in range(num_steps):
        noise = torch.randn(2, n, a, device=env.device, generator=generator)
        norm, obs, action = act_fn(actor, norm, env.obs, noise[0], kernels, cfg)
        out = env.step(action)
        next_value, next_features, soft_reward = bootstrap_fn(
            actor, critic, norm, out.next_obs, out.reward, out.terminated, noise[1], kernels, cfg)
        done = out.terminated | out.truncated
        ep_return = ep_return + out.reward
        ret_sum += torch.where(done, ep_return, 0.0).sum()
        episodes += done.sum()
        nonfinite += out.nonfinite.sum()
        ep_return = torch.where(done, 0.0, ep_return)
        steps.append(Transition(obs, action, out.reward, soft_reward, out.terminated, out.truncated,
                                next_value, next_features))
    data = Transition(*(torch.stack(field) for field in zip(*steps)))
    stats = {"episode_return_sum": ret_sum, "episodes": episodes, "nonfinite": nonfinite}
    return RolloutCarry(norm, ep_return), data, stats


@torch.no_grad()
def evaluate(policy_mean, norm: NormState, env, seed: int, cfg) -> float:
    """Mean undiscounted return of one full episode per fresh env, deterministic action tanh(mean), with
    policy_mean(normalised obs [N, O]) -> pre-tanh mean [N, A]. Shared by every algorithm."""
    obs = env.reset(seed, random_step_count=False)
    ret = torch.zeros(env.num_envs, device=env.device)
    alive = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)
    for _ in range(env.max_episode_steps):
        mean = policy_mean(normalize(norm, obs, cfg.obs_norm))
        out = env.step(torch.tanh(mean).clamp(-cfg.action_clip, cfg.action_clip))
        ret += torch.where(alive, out.reward, 0.0)
        alive &= ~(out.terminated | out.truncated)
        obs = out.obs
    return float(ret.mean())
