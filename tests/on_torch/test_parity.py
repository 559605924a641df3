"""The torch and JAX paths are one algorithm: from identical weights, batch and noise, the critic loss,
actor loss (with both multiplier losses), KL, entropy and all gradients agree within float32 tolerance."""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reppo_fast.config import Config
from reppo_fast.kernels import bind
from reppo_fast.on_jax.reppo import losses as jl
from reppo_fast.on_jax.reppo import networks as jn
from reppo_fast.on_torch.reppo import losses as tl
from reppo_fast.on_torch.reppo import networks as tn

B, O, A, H, S = 32, 5, 3, 32, 16
CFG = Config().replace(actor_hidden=32, actor_hidden_blocks=2, critic_hidden=H, num_bins=41,
                       v_min=0.0, v_max=40.0, kl_samples=S)
JK, TK = bind("jax", "reference"), bind("torch", "reference")
pytestmark = pytest.mark.usefixtures("float32_matmuls")  # like with like on a GPU too


def _setup(seed=0, cfg=CFG):
    hist0 = JK.hl_gauss_hist(jnp.zeros((1,)), num_bins=cfg.reppo.num_bins, v_min=cfg.reppo.v_min,
                             v_max=cfg.reppo.v_max)[0]
    k = jax.random.split(jax.random.PRNGKey(seed), 12)
    j_actor = {"net": jn.init_actor(k[0], O, A, cfg.actor_hidden, cfg.actor_hidden_blocks),
               "log_alpha": jnp.log(0.05), "log_beta": jnp.log(0.2)}
    j_critic = jn.init_critic(k[1], O, A, H, hist0)
    t_actor = tn.init_actor(O, A, cfg.actor_hidden, cfg.actor_hidden_blocks, 1.0, 1.0)
    t_critic = tn.init_critic(O, A, H, torch.tensor(np.asarray(hist0)))
    tn.load_jax_params(t_actor, j_actor, t_critic, j_critic)
    obs = jax.random.normal(k[2], (B, O))
    # pi_old close to pi on half the rows and far on the rest: both branches of the clipped objective run.
    mean, log_std = jn.actor_apply(j_actor["net"], obs)
    dist = jnp.where(jnp.arange(B) < B // 2, 0.01, 1.0)[:, None]
    j_batch = jl.Batch(obs, jnp.tanh(jax.random.normal(k[3], (B, A))),
                       jax.random.normal(k[4], (B,)), jax.random.bernoulli(k[5], 0.2, (B,)),
                       jax.random.bernoulli(k[6], 0.2, (B,)), 20.0 + 5 * jax.random.normal(k[7], (B,)),
                       jax.random.normal(k[8], (B, H)), mean + dist * jax.random.normal(k[9], (B, A)),
                       log_std + dist * jax.random.normal(k[10], (B, A)))
    noise = jax.random.normal(k[11], (1 + S, B, A))
    t_batch = tl.Batch(*(torch.as_tensor(np.asarray(x)) for x in j_batch))
    return j_actor, j_critic, t_actor, t_critic, j_batch, t_batch, noise


def _close(a, b, rtol=2e-5, atol=2e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def _compare_grads(module, jax_grads, torch_grads, kind):
    """Load the JAX gradient tree into a copy of the module, then compare parameter by parameter."""


    mirror = copy.deepcopy(module)
    if kind == "actor":
        tn.load_jax_params(actor=mirror, jax_actor=jax_grads)
    else:
        tn.load_jax_params(critic=mirror, jax_critic=jax_grads)
    for (name, want), got in zip(mirror.named_parameters(), torch_grads, strict=True):
        scale = float(np.abs(want.detach().numpy()).max()) + 1e-8
        _close(got, want.detach(), rtol=1e-4, atol=1e-5 * scale)


def test_critic_loss_and_gradients_match():
    _, j_critic, _, t_critic, j_batch, t_batch, _ = _setup()
    (j_loss, j_m), j_grads = jax.value_and_grad(jl.critic_loss, has_aux=True)(j_critic, j_batch, JK, CFG)
    t_loss, t_m = tl.critic_loss(t_critic, t_batch, TK, CFG)
    _close(t_loss.detach(), j_loss)
    for key in j_m:
        _close(t_m[key], j_m[key], rtol=1e-4)
    t_grads = torch.autograd.grad(t_loss, list(t_critic.parameters()))
    _compare_grads(t_critic, j_grads, t_grads, "critic")


@pytest.mark.parametrize("objective, estimator", [("clipped", "sampled"), ("full", "sampled"),
                                                  ("clipped", "analytic")])
def test_actor_loss_multipliers_and_gradients_match(objective, estimator):
    cfg = CFG.replace(actor_objective=objective, kl_estimator=estimator, kl_target=0.05)
    j_actor, j_critic, t_actor, t_critic, j_batch, t_batch, noise = _setup(1, cfg)
    old = noise[1:] if estimator == "sampled" else None
    (j_loss, j_m), j_grads = jax.value_and_grad(jl.actor_loss, has_aux=True)(
        j_actor, j_critic, j_batch, noise[0], old, JK, cfg)
    t_noise = torch.as_tensor(np.asarray(noise))
    t_loss, t_m = tl.actor_loss(t_actor, t_critic, t_batch, t_noise[0],
                                t_noise[1:] if estimator == "sampled" else None, TK, cfg)
    _close(t_loss.detach(), j_loss, rtol=1e-4, atol=1e-5)
    for key in ("actor/entropy", "actor/kl", "actor/alpha", "actor/beta", "actor/q", "actor/kl_clipped_frac"):
        _close(t_m[key], j_m[key], rtol=1e-4, atol=1e-5)
    t_grads = torch.autograd.grad(t_loss, list(t_actor.parameters()))
    _compare_grads(t_actor, j_grads, t_grads, "actor")
    assert 0.2 < float(j_m["actor/kl_clipped_frac"]) < 0.8  # both branches were exercised


def test_forward_passes_match():
    j_actor, j_critic, t_actor, t_critic, j_batch, t_batch, _ = _setup(2)
    _close(tn.actor_apply(t_actor.net, t_batch.obs)[0].detach(),
           jn.actor_apply(j_actor["net"], j_batch.obs)[0])
    z_j = jn.critic_encode(j_critic, j_batch.obs, j_batch.action)
    z_t = tn.critic_encode(t_critic, t_batch.obs, t_batch.action)
    _close(z_t.detach(), z_j, rtol=1e-4, atol=1e-5)
    _close(tn.critic_q_logits(t_critic, z_t).detach(), jn.critic_q_logits(j_critic, z_j), rtol=1e-4,
           atol=1e-4)
