"""PPO is one algorithm on both paths, for both policy std forms (cfg.ppo.policy_std): from identical weights
(load_jax_params), the policy and value outputs agree, and with the same batch and noise the loss, its
metrics and every gradient agree within float32 tolerance; and the loss matches a float64 hand
computation."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reppo_fast.config import Config
from reppo_fast.kernels import bind
from reppo_fast.on_jax.ppo import losses as jl
from reppo_fast.on_jax.ppo import networks as jn
from reppo_fast.on_torch.ppo import losses as tl
from reppo_fast.on_torch.ppo import networks as tn

B, O, A = 64, 5, 3
CFG = Config().replace(algo="ppo", actor_hidden=16, actor_hidden_blocks=2, critic_hidden=32,
                       critic_hidden_blocks=2, clip_eps=0.2, entropy_coef=0.01, value_coef=0.25)
JK, TK = bind("jax", "reference"), bind("torch", "reference")
POLICY_STD = ["state", "scalar"]
pytestmark = pytest.mark.usefixtures("float32_matmuls")  # like with like on a GPU too


def _setup(seed=0, policy_std="state"):
    k = jax.random.split(jax.random.PRNGKey(seed), 8)
    j_actor = jn.init_actor(k[0], O, A, CFG.actor_hidden, CFG.actor_hidden_blocks, policy_std)
    j_critic = jn.init_critic(k[1], O, CFG.critic_hidden, CFG.critic_hidden_blocks)
    t_actor = tn.Actor(O, A, CFG.actor_hidden, CFG.actor_hidden_blocks, policy_std)
    t_critic = tn.Critic(O, CFG.critic_hidden, CFG.critic_hidden_blocks)
    tn.load_jax_params(t_actor, j_actor, t_critic, j_critic)
    obs = jax.random.normal(k[2], (B, O))
    mean, log_std = jn.actor_apply(j_actor, obs)
    # The behaviour policy differs from the current one by a spread of amounts: ratios on both sides
    # of the clip range, so both branches of the min run.
    raw_action = mean + jnp.exp(log_std) * jax.random.normal(k[3], (B, A))
    old_log_prob = jl.gaussian_log_prob(mean, log_std, raw_action) + 0.4 * jax.random.normal(k[4], (B,))
    j_batch = jl.PpoBatch(obs, raw_action, old_log_prob, jax.random.normal(k[5], (B,)),
                          3.0 + jax.random.normal(k[6], (B,)))
    t_batch = tl.PpoBatch(*(torch.as_tensor(np.array(x)) for x in j_batch))
    return j_actor, j_critic, t_actor, t_critic, j_batch, t_batch, jax.random.normal(k[7], (B, A))


def _close(a, b, rtol=3e-5, atol=3e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


@pytest.mark.parametrize("policy_std", POLICY_STD)
def test_policy_and_value_outputs_agree_after_load_jax_params(policy_std):
    j_actor, j_critic, t_actor, t_critic, j_batch, t_batch, _ = _setup(seed=1, policy_std=policy_std)
    j_mean, j_log_std = jn.actor_apply(j_actor, j_batch.obs)
    with torch.no_grad():
        t_mean, t_log_std = tn.actor_apply(t_actor, t_batch.obs)
        t_value = tn.critic_apply(t_critic, t_batch.obs)
    assert t_mean.shape == t_log_std.shape == (B, A)
    _close(t_mean, j_mean)
    _close(t_log_std, j_log_std)
    _close(t_value, jn.critic_apply(j_critic, j_batch.obs))
    # The state form's std differs between states; the scalar form's does not.
    assert (float(np.ptp(np.asarray(j_log_std), axis=0).min()) > 0.0) == (policy_std == "state")


def test_load_jax_params_refuses_a_different_policy_std_form():
    j_actor = jn.init_actor(jax.random.PRNGKey(0), O, A, CFG.actor_hidden, CFG.actor_hidden_blocks, "scalar")
    j_critic = jn.init_critic(jax.random.PRNGKey(1), O, CFG.critic_hidden, CFG.critic_hidden_blocks)
    t_actor = tn.Actor(O, A, CFG.actor_hidden, CFG.actor_hidden_blocks, "state")
    t_critic = tn.Critic(O, CFG.critic_hidden, CFG.critic_hidden_blocks)
    with pytest.raises(ValueError, match="policy_std"):
        tn.load_jax_params(t_actor, j_actor, t_critic, j_critic)


@pytest.mark.parametrize("policy_std", POLICY_STD)
@pytest.mark.parametrize("normalize_advantage", [True, False])
def test_loss_metrics_and_gradients_agree(normalize_advantage, policy_std):
    cfg = CFG.replace(normalize_advantage=normalize_advantage, policy_std=policy_std)
    j_actor, j_critic, t_actor, t_critic, j_batch, t_batch, noise = _setup(policy_std=policy_std)
    (j_loss, j_metrics), (j_ga, j_gc) = jax.value_and_grad(jl.ppo_loss, argnums=(0, 1), has_aux=True)(
        j_actor, j_critic, j_batch, noise, JK, cfg)
    t_loss, t_metrics = tl.ppo_loss(t_actor, t_critic, t_batch, torch.as_tensor(np.array(noise)), TK, cfg)
    t_loss.backward()
    _close(t_loss.detach(), j_loss)
    assert set(t_metrics) == set(j_metrics)
    for key in j_metrics:
        _close(t_metrics[key], j_metrics[key])
    assert 0.0 < float(j_metrics["actor/clip_fraction"]) < 1.0  # both branches of the clip ran
    for layer, g in zip(t_actor.net, j_ga["net"], strict=True):
        _close(layer.weight.grad.T, g["w"])
        _close(layer.bias.grad, g["b"])
    assert ("std_param" in j_ga) == (t_actor.std_param is not None) == (policy_std == "scalar")
    if policy_std == "scalar":
        _close(t_actor.std_param.grad, j_ga["std_param"])
    for layer, g in zip(t_critic.net, j_gc, strict=True):
        _close(layer.weight.grad.T, g["w"])
        _close(layer.bias.grad, g["b"])


@pytest.mark.parametrize("policy_std", POLICY_STD)
def test_loss_matches_a_float64_hand_computation(policy_std):
    """Clipped surrogate, value loss and entropy term written out in float64 numpy; the entropy sample's
    -log pi includes the tanh Jacobian: log pi(a) = log N(u) - sum log(1 - tanh(u)^2)."""
    j_actor, j_critic, _, _, batch, _, noise = _setup(seed=3, policy_std=policy_std)
    loss, _ = jl.ppo_loss(j_actor, j_critic, batch, noise, JK, CFG)
    f64 = lambda x: np.asarray(x, np.float64)  # noqa: E731
    mean, log_std = (f64(x) for x in jn.actor_apply(j_actor, batch.obs))
    std = np.exp(log_std)
    u = f64(batch.raw_action)
    log_n = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
    ratio = np.exp(log_n - f64(batch.log_prob))
    adv = f64(batch.advantage)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    surrogate = -np.mean(np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.2) * adv))
    value = f64(jn.critic_apply(j_critic, batch.obs))
    value_loss = np.mean((value - f64(batch.returns)) ** 2)
    sample = mean + std * f64(noise)
    log_pi = (-0.5 * f64(noise) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
              - np.log1p(-np.tanh(sample) ** 2)).sum(-1)
    expected = surrogate + 0.25 * value_loss - 0.01 * (-log_pi.mean())
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4, atol=1e-5)
