"""REPPO loss pieces against hand-derived cases: multiplier directions, the clipped objective,
the critic's masks, and the initial Q of the HL-Gauss head."""


import jax
import jax.numpy as jnp
import numpy as np

from reppo_fast.config import Config
from reppo_fast.kernels import bind
from reppo_fast.on_jax.reppo import networks as nets
from reppo_fast.on_jax.reppo.losses import Batch, actor_loss, critic_loss, q_value

K = bind("jax", "reference")
CFG = Config().replace(critic_hidden=16, actor_hidden=16, actor_hidden_blocks=2, num_bins=21,
                       v_min=0.0, v_max=20.0)
B, O, A, H = 8, 3, 2, 16


def _params(cfg=CFG):
    hist0 = K.hl_gauss_hist(jnp.zeros((1,)), num_bins=cfg.reppo.num_bins, v_min=cfg.reppo.v_min,
                            v_max=cfg.reppo.v_max)[0]
    actor = {"net": nets.init_actor(jax.random.PRNGKey(0), O, A, cfg.actor_hidden, cfg.actor_hidden_blocks),
             "log_alpha": jnp.log(0.5), "log_beta": jnp.log(0.25)}
    critic = nets.init_critic(jax.random.PRNGKey(1), O, A, cfg.critic_hidden, hist0)
    return actor, critic


def _batch(key, terminated=None, truncated=None):
    ks = jax.random.split(key, 6)
    zeros = jnp.zeros((B,), bool)
    return Batch(jax.random.normal(ks[0], (B, O)), jnp.tanh(jax.random.normal(ks[1], (B, A))),
                 jax.random.normal(ks[2], (B,)),
                 zeros if terminated is None else terminated, zeros if truncated is None else truncated,
                 5.0 + jax.random.normal(ks[3], (B,)), jax.random.normal(ks[4], (B, H)),
                 0.1 * jax.random.normal(ks[5], (B, A)), jnp.full((B, A), -0.5))


def test_untrained_critic_predicts_q_near_zero():
    _, critic = _params()
    q, _ = q_value(critic, jnp.ones((B, O)), jnp.zeros((B, A)), K, CFG)
    # 40 * hist(0) logits: the bin at 0 dominates, far from the support's middle (10).
    assert float(jnp.max(jnp.abs(q))) < 0.5


def test_rms_norm_matches_formula():
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    scale = np.linspace(0.5, 2.0, 6).astype(np.float32)
    want = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + nets.RMS_EPS) * scale
    np.testing.assert_allclose(nets.rms_norm(scale, x), want, rtol=1e-5)


def test_critic_loss_masks_truncated_and_terminated_rows():
    _, critic = _params()
    batch = _batch(jax.random.PRNGKey(2))
    trunc = jnp.arange(B) < 3
    loss_all, _ = critic_loss(critic, batch, K, CFG)
    masked = batch._replace(truncated=trunc)
    loss_masked, _ = critic_loss(critic, masked, K, CFG)
    only_rest = jax.tree.map(lambda x: x[3:], batch)
    loss_rest, _ = critic_loss(critic, only_rest, K, CFG)
    # truncated rows contribute zero but still count in the batch mean
    np.testing.assert_allclose(loss_masked, loss_rest * (B - 3) / B, rtol=1e-5)
    assert float(loss_masked) < float(loss_all)
    # terminated rows drop the aux term only: a NaN aux target there must not leak
    term = jnp.arange(B) == 0
    poisoned = batch._replace(terminated=term, next_features=batch.next_features.at[0].set(jnp.inf))
    loss, grads = jax.value_and_grad(lambda c: critic_loss(c, poisoned, K, CFG)[0])(critic)
    assert np.isfinite(float(loss)) and all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


def _actor_grads(actor, critic, batch, cfg=CFG):
    noise = jax.random.normal(jax.random.PRNGKey(3), (B, A))
    old_noise = jax.random.normal(jax.random.PRNGKey(4), (cfg.reppo.kl_samples, B, A))
    return jax.grad(lambda a: actor_loss(a, critic, batch, noise, old_noise, K, cfg)[0])(actor), \
        actor_loss(actor, critic, batch, noise, old_noise, K, cfg)[1]


def test_multiplier_gradients_point_the_right_way():
    actor, critic = _params()
    batch = _batch(jax.random.PRNGKey(5))
    # d/dlog_alpha [alpha * sg(ent_target_mult*A + entropy)] = alpha * (ent_target_mult*A + entropy).
    # ent_target_mult = -100: the target entropy +100*A is far above the policy's, so alpha must rise
    # (negative gradient); kl_target tiny: KL exceeds it, so beta must rise.
    cfg = CFG.replace(ent_target_mult=-100.0, kl_target=1e-6)
    grads, m = _actor_grads(actor, critic, batch, cfg)
    assert float(grads["log_alpha"]) < 0 and float(grads["log_beta"]) < 0
    np.testing.assert_allclose(grads["log_alpha"], m["actor/alpha"] * (-100.0 * A + m["actor/entropy"]),
                               rtol=1e-4)
    cfg = CFG.replace(ent_target_mult=100.0, kl_target=100.0)
    grads, _ = _actor_grads(actor, critic, batch, cfg)
    assert float(grads["log_alpha"]) > 0 and float(grads["log_beta"]) > 0


def _per_row(actor, critic, batch, cfg=CFG):
    """The objective's per-state pieces, computed outside actor_loss: (log pi, Q~, KL) each [B]."""
    noise = jax.random.normal(jax.random.PRNGKey(3), (B, A))
    old_noise = jax.random.normal(jax.random.PRNGKey(4), (cfg.reppo.kl_samples, B, A))
    mean, log_std = nets.actor_apply(actor["net"], batch.obs)
    out = K.tanh_normal(mean, log_std, noise, batch.old_mean, batch.old_log_std, old_noise)
    q, _ = q_value(critic, batch.obs, out.action, K, cfg)
    return np.float64(out.log_prob), np.float64(q), np.float64(out.kl)


def _loss(actor, critic, batch, cfg):
    noise = jax.random.normal(jax.random.PRNGKey(3), (B, A))
    old_noise = jax.random.normal(jax.random.PRNGKey(4), (cfg.reppo.kl_samples, B, A))
    return float(actor_loss(actor, critic, batch, noise, old_noise, K, cfg)[0])


def test_clipped_objective_is_the_documented_per_state_switch():
    # docs/algorithms.md section 6: l_s = alpha * log pi - Q~ where KL_s < kl_target, else beta * KL_s;
    # loss = mean_s l_s + alpha * (ent_target_mult * A - mean log pi) - beta * (mean KL - kl_target).
    actor, critic = _params()
    batch = _batch(jax.random.PRNGKey(6))
    logp, q, kl = _per_row(actor, critic, batch)
    alpha, beta = 0.5, 0.25
    target = float(np.median(kl))  # half the rows on each branch
    cfg = CFG.replace(kl_target=target)
    assert 0 < np.sum(kl < target) < B
    per_state = np.where(kl < target, alpha * logp - q, beta * kl)
    multipliers = alpha * (0.5 * A - logp.mean()) - beta * (kl.mean() - target)
    np.testing.assert_allclose(_loss(actor, critic, batch, cfg), per_state.mean() + multipliers,
                               rtol=1e-5, atol=1e-6)
    # "full" adds beta * KL_s on every state
    want_full = (alpha * logp - q + beta * kl).mean() + multipliers
    np.testing.assert_allclose(_loss(actor, critic, batch, cfg.replace(actor_objective="full")), want_full,
                               rtol=1e-5, atol=1e-6)
    # kl_target above every KL: clipped == full - beta * mean KL exactly
    far = CFG.replace(kl_target=1e9)
    full = _loss(actor, critic, batch, far.replace(actor_objective="full"))
    np.testing.assert_allclose(_loss(actor, critic, batch, far), full - beta * kl.mean(), rtol=1e-5,
                               atol=1e-6)


def test_clipped_objective_beyond_the_trust_region_ignores_the_critic():
    actor, critic = _params()
    batch = _batch(jax.random.PRNGKey(6))
    # kl_target tiny: only beta*KL carries actor gradient, so the critic cannot push the policy.
    near = CFG.replace(kl_target=1e-9)
    g_near, m = _actor_grads(actor, critic, batch, near)
    assert float(m["actor/kl_clipped_frac"]) == 1.0
    critic_zero = jax.tree.map(jnp.zeros_like, critic)
    g_near_noq, _ = _actor_grads(actor, critic_zero, batch, near)
    np.testing.assert_allclose(g_near["net"]["out"]["w"], g_near_noq["net"]["out"]["w"], rtol=1e-5, atol=1e-7)
