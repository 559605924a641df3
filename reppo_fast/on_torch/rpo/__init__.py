"""RPO on the torch path (experimental; docs/algorithms.md section 11, ../shared/rpo_spec.md), the twin of
on_jax/rpo with the same fields, names and maths: the trainer's `ALGORITHM`.

Per window of H = cfg.num_steps steps the trainer rolls out theta_old through the JAX physics with autograd
on (envs/jax_autograd.py) and differentiates `window_objective` with respect to the actions a_k sent to the
env. `targets` turns dJ/da into g_k = dJ/dz_k and sanitises it per sample; `update` runs rpo_epochs passes of
the masked reparameterised surrogate, then num_epochs x num_minibatches of the V critics on TD(lambda)
targets, then moves the target critics. The observation normaliser moves with every step, its statistics
outside the differentiated graph.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from reppo_fast.algorithm import APPLIED_STEPS, SKIPPED_STEPS, Algorithm
from reppo_fast.on_torch.common import (
    NormState,
    guarded_step,
    mean_metrics,
    minibatches,
    norm_update,
    normalize,
    step_optimizer,
)
from reppo_fast.on_torch.data_parallel import SINGLE
from reppo_fast.on_torch.rpo import losses
from reppo_fast.on_torch.rpo import networks as nets
from reppo_fast.on_torch.rpo.losses import RpoBatch


class RpoTransition(NamedTuple):
    """One window step [N, ...] (stacked: [T, N, ...]); see on_jax.rpo.RpoTransition."""
    obs: torch.Tensor
    z: torch.Tensor
    mean_old: torch.Tensor
    log_std_old: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_value: torch.Tensor   # V_target(s_{k+1}) of the true next observation (differentiable)
    action_grad: torch.Tensor  # dJ/da_k, filled in by the trainer after the backward pass


class Acted(NamedTuple):
    z: torch.Tensor        # [N, A]
    mean: torch.Tensor     # [N, A]
    log_std: torch.Tensor  # [N, A]


class Targets(NamedTuple):
    returns: torch.Tensor      # [T, N] TD(lambda) targets of the V critics
    action_grad: torch.Tensor  # [T, N, A] g = dJ/dz, sanitised and clipped
    nonfinite: torch.Tensor    # [T, N] bool: g was non-finite there (zeroed)


def init_networks(cfg, env, kernels, rng=None):
    """(actor, Critics: C online critics and their target copy), on the current default device."""
    del kernels, rng  # torch's seeded global generator
    rpo = cfg.rpo
    actor = nets.init_actor(env.obs_size, env.action_size, cfg.actor_hidden, cfg.actor_hidden_blocks,
                            rpo.rpo_std, rpo.rpo_log_std_init, cfg.precision)
    return actor, nets.init_critics(env.obs_size, cfg.critic_hidden, cfg.critic_hidden_blocks,
                                    rpo.rpo_num_critics, cfg.precision)


def make_optimizers(cfg, actor, critic, device: torch.device):
    """AdamW (rpo_adam_b1, rpo_adam_b2, rpo_weight_decay): the actor at lr, the online critics at
    rpo_critic_lr (the target critics are buffers: `update` moves them). The global clip is in `update`
    (common.step_optimizer). Fused; on CUDA capturable, with tensor learning rates, as
    trainer.make_optimizer."""
    rpo = cfg.rpo
    capturable = device.type == "cuda"

    def adamw(module, lr):
        lr = torch.tensor(lr, device=device) if capturable else lr
        # weight_decay is passed explicitly: torch's AdamW default (0.01) is not optax's.
        return torch.optim.AdamW(module.parameters(), lr=lr, betas=(rpo.rpo_adam_b1, rpo.rpo_adam_b2),
                                 weight_decay=rpo.rpo_weight_decay, capturable=capturable, fused=True)

    return adamw(actor, cfg.lr), adamw(critic, rpo.rpo_critic_lr)


def step_noise(generator: torch.Generator, num_envs: int, action_size: int):
    """[N, A]: eps of z = mu + sigma eps."""
    return torch.randn(num_envs, action_size, device=generator.device, generator=generator)


def act(actor, critic, norm, obs_raw, noise, kernels, cfg):
    """Normaliser update (its statistics outside the graph), z = mu + sigma eps, a = clip(tanh z)."""
    del critic, kernels
    if cfg.obs_norm:
        norm = NormState(*(x.detach() for x in norm_update(norm, obs_raw.detach())))
    obs = normalize(norm, obs_raw, cfg.obs_norm)
    mean, log_std = nets.actor_apply(actor, obs)
    z = mean + torch.exp(log_std) * noise
    action = torch.tanh(z).clamp(-cfg.action_clip, cfg.action_clip)
    return norm, obs, action, Acted(z, mean, log_std)


def bootstrap(actor, critic, norm, obs, action, acted: Acted, env_step, noise, kernels, cfg) -> RpoTransition:
    """V_target of the true next observation, differentiable (the window objective bootstraps with it)."""
    del actor, noise, kernels
    next_value = nets.value(critic.target, normalize(norm, env_step.next_obs, cfg.obs_norm))
    return RpoTransition(obs, acted.z, acted.mean, acted.log_std, env_step.reward, env_step.terminated,
                         env_step.truncated, next_value, torch.zeros_like(action))


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
    return RpoBatch(*(x.detach().reshape((-1,) + x.shape[2:]) for x in batch))


def update(state, batch: RpoBatch, kernels, cfg, ranges, dp=SINGLE) -> dict:
    """rpo_epochs x rpo_minibatches actor steps, num_epochs x num_minibatches critic steps (the minibatches
    drawn from state.generator; each gradient averaged over the data-parallel ranks), then
    target <- alpha target + (1 - alpha) online."""
    del kernels
    rpo = cfg.rpo
    actor_params, critic_params = list(state.actor.parameters()), list(state.critic.parameters())
    a_history, c_history = [], []
    with ranges("update/actor"):
        for mb in minibatches(batch, rpo.rpo_epochs, rpo.rpo_minibatches, state.generator):
            def actor_step(mb=mb):
                loss, metrics = losses.actor_loss(state.actor, mb, rpo)
                norm = step_optimizer(loss, actor_params, state.actor_opt, cfg.max_grad_norm, dp)
                return {"actor/loss": loss.detach(), "actor/grad_norm": norm, **metrics}
            a_history.append(guarded_step(actor_step, [state.actor], [state.actor_opt], dp))
    with ranges("update/critic"):
        for mb in minibatches(batch, cfg.num_epochs, cfg.num_minibatches, state.generator):
            def critic_step(mb=mb):
                loss, metrics = losses.critic_loss(state.critic.online, mb)
                norm = step_optimizer(loss, critic_params, state.critic_opt, cfg.max_grad_norm, dp)
                return {"critic/grad_norm": norm, **metrics}
            c_history.append(guarded_step(critic_step, [state.critic], [state.critic_opt], dp))
    nets.polyak_(state.critic, rpo.rpo_target_alpha)
    a_metrics, c_metrics = mean_metrics(a_history), mean_metrics(c_history)
    # The actor's steps and the critic's, together.
    counts = {k: a_metrics.pop(k) + c_metrics.pop(k) for k in (SKIPPED_STEPS, APPLIED_STEPS)}
    return {**a_metrics, **c_metrics, **counts,
            "actor/nonfinite_action_grads": batch.nonfinite.sum(),
            "actor/action_grad_norm": torch.linalg.vector_norm(batch.action_grad, dim=-1).mean()}


def policy_mean(actor, obs):
    return nets.actor_apply(actor, obs)[0]


ALGORITHM = Algorithm("rpo", init_networks, step_noise, act, bootstrap, targets, flat_batch, None, None,
                      policy_mean, window_objective=window_objective, make_optimizers=make_optimizers,
                      update=update)
