"""RPO's objectives in PyTorch, the twin of on_jax/rpo/losses.py name for name (docs/algorithms.md section
11; ../shared/rpo_spec.md section 3).

Shapes: T window steps, N envs, B = a minibatch of T*N samples, O obs, A action.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from reppo_fast.on_torch.ppo.losses import gaussian_log_prob
from reppo_fast.on_torch.rpo import networks as nets

HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)


class RpoBatch(NamedTuple):
    """Flattened window samples, every field [B, ...]; see on_jax.rpo.losses.RpoBatch."""
    obs: torch.Tensor          # [B, O] normalised s_k, as the acting policy saw it
    z: torch.Tensor            # [B, A] pre-tanh action z_k = mu_old + sigma_old eps_k
    mean_old: torch.Tensor     # [B, A] mu_old(s_k)
    log_std_old: torch.Tensor  # [B, A] log sigma_old(s_k)
    action_grad: torch.Tensor  # [B, A] g_k = dJ/dz_k, sanitised (and clipped per sample)
    returns: torch.Tensor      # [B] TD(lambda) target of the V critics
    nonfinite: torch.Tensor    # [B] bool: g was non-finite there before sanitising


def window_objective(reward, terminated, truncated, next_value, gamma):
    """SHAC's window return summed over envs, all inputs [T, N]:

        J = sum_n sum_k gamma^{c_k} r_k + gamma^{c_k + 1} V_target(s_{k+1}) [segment ended by truncation
                                                                            or the window end]

    c_k counts the steps since the segment start (the window start or the step after an episode end).
    A terminated step has no bootstrap; a truncated one bootstraps from the true next observation."""
    ended = terminated | truncated
    counts, c = [], torch.zeros(reward.shape[1], dtype=torch.int32, device=reward.device)
    for done in ended:
        counts.append(c)
        c = torch.where(done, 0, c + 1)
    discount = torch.pow(gamma, torch.stack(counts).to(reward.dtype))
    last = torch.zeros_like(ended)
    last[-1] = True
    bootstraps = (truncated | last) & ~terminated
    return torch.sum(discount * reward + torch.where(bootstraps, gamma * discount * next_value, 0.0))


def pre_tanh_grad(action_grad, z, action_clip: float):
    """dJ/dz from dJ/da with a = clip(tanh z, +-action_clip): da/dz = 1 - tanh(z)^2 inside the clip,
    else 0."""
    t = torch.tanh(z)
    return torch.where(t.abs() < action_clip, action_grad * (1.0 - t * t), 0.0)


def sanitise(action_grad, grad_clip: float | None):
    """Per sample ([..., A]): a non-finite g becomes 0; then its norm is clipped to grad_clip.
    Returns (g, [...] bool: the samples that were non-finite)."""
    nonfinite = ~torch.isfinite(action_grad).all(dim=-1)
    g = torch.where(nonfinite[..., None], 0.0, action_grad)
    if grad_clip is not None:
        norm = torch.linalg.vector_norm(g, dim=-1, keepdim=True)
        g = g * torch.clamp(grad_clip / torch.clamp(norm, min=1e-12), max=1.0)
    return g, nonfinite


def gaussian_kl(mean_p, log_std_p, mean_q, log_std_q):
    """KL(N(mean_p, std_p) || N(mean_q, std_q)) summed over A."""
    return torch.sum(log_std_q - log_std_p + 0.5 * torch.exp(2.0 * (log_std_p - log_std_q))
                     + 0.5 * ((mean_p - mean_q) * torch.exp(-log_std_q)).square() - 0.5, dim=-1)


def regenerate(mean, log_std, z):
    """z~ = mean + std * sg((z - mean) / std): numerically z, with the current policy's d/dtheta."""
    eps = ((z - mean) * torch.exp(-log_std)).detach()
    return mean + torch.exp(log_std) * eps


def surrogate_weight(log_ratio, rpo):
    """w = sg(rho * 1[1 - low <= rho <= 1 + high]) (`mask`) or sg(clip(rho, 1 - low, 1 + high)) (`clip`)."""
    rho = torch.exp(log_ratio)
    low, high = 1.0 - rpo.rpo_clip_low, 1.0 + rpo.rpo_clip_high
    if rpo.rpo_clip_mode == "mask":
        w = torch.where((rho >= low) & (rho <= high), rho, 0.0)
    else:
        w = torch.clamp(rho, low, high)
    return w.detach()


def actor_loss(actor, mb: RpoBatch, rpo):
    """-(lambda_surr mean w <sg(g), z~>) + lambda_KL mean KL - lambda_ent mean H: at theta = theta_old the
    gradient is -mean_k <g_k, dz_k/dtheta>, the SHAC gradient of J / (T N) (its KL gradient is 0 there)."""
    mean, log_std = nets.actor_apply(actor, mb.obs)
    z_regen = regenerate(mean, log_std, mb.z)
    log_ratio = gaussian_log_prob(mean, log_std, mb.z) - gaussian_log_prob(mb.mean_old, mb.log_std_old, mb.z)
    w = surrogate_weight(log_ratio, rpo)
    surrogate = torch.mean(w * torch.sum(mb.action_grad.detach() * z_regen, dim=-1))
    if rpo.rpo_kl_dir == "old_new":
        kl = gaussian_kl(mb.mean_old, mb.log_std_old, mean, log_std)
    else:
        kl = gaussian_kl(mean, log_std, mb.mean_old, mb.log_std_old)
    entropy = torch.sum(log_std + HALF_LOG_2PI_E, dim=-1)
    loss = (-rpo.rpo_surr_coef * surrogate + rpo.rpo_kl_coef * kl.mean()
            - rpo.rpo_ent_coef * entropy.mean())
    inside = ((w > 0).float().mean() if rpo.rpo_clip_mode == "mask"
              else torch.ones((), device=w.device))
    return loss, {"actor/surrogate": surrogate.detach(), "actor/kl": kl.mean().detach(),
                  "actor/entropy": entropy.mean().detach(), "actor/inside_fraction": inside,
                  "actor/std": torch.exp(log_std).mean().detach()}


def critic_loss(online, mb: RpoBatch):
    """mean over the C critics and the batch of (V_i(s) - G)^2."""
    v = nets.values(online, mb.obs)
    loss = torch.mean((v - mb.returns).square())
    return loss, {"critic/loss": loss.detach(), "critic/value": v.mean().detach()}
