"""REPPO's networks against the paper's configuration, on both frameworks: shapes and parameter counts
written out by hand from the paper's layout (docs/algorithms.md sections 2 and 5), and the initial
statistics of flax's defaults (lecun-normal weights, zero biases, unit RMSNorm scales, zero_dist = hist(0)).
Parity tests compare our two implementations; these compare each with the paper.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reppo_fast.config import Config
from reppo_fast.kernels import bind
from reppo_fast.on_jax.reppo import networks as jax_nets
from reppo_fast.on_torch.reppo import networks as torch_nets

# HumanoidRun (mujoco_playground): 67 observations, 21 actions; the paper's DMC setting: width 512, K 151.
OBS, ACT = 67, 21
CFG = Config()
H, K = CFG.actor_hidden, CFG.reppo.num_bins


def _hist0(cfg=CFG):
    return bind("jax", "reference").hl_gauss_hist(jnp.zeros((1,)), num_bins=cfg.reppo.num_bins,
                                                   v_min=cfg.reppo.v_min, v_max=cfg.reppo.v_max,
                                                   sigma_ratio=cfg.reppo.sigma_ratio)[0]


def _jax_params():
    actor = jax_nets.init_actor(jax.random.PRNGKey(0), OBS, ACT, CFG.actor_hidden, CFG.actor_hidden_blocks)
    critic = jax_nets.init_critic(jax.random.PRNGKey(1), OBS, ACT, CFG.critic_hidden, _hist0())
    return actor, critic


def _torch_params():
    torch.manual_seed(0)
    actor = torch_nets.init_actor(OBS, ACT, CFG.actor_hidden, CFG.actor_hidden_blocks, 0.01, 0.01)
    critic = torch_nets.init_critic(OBS, ACT, CFG.critic_hidden, torch.as_tensor(np.array(_hist0())))
    return actor, critic


def _count_jax(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _count_torch(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _linear(fan_in, fan_out):
    return fan_in * fan_out + fan_out


# The paper's actor ("3 actor layers" = 3 Linear layers): Linear(O, H) -> RMSNorm -> SiLU -> Linear(H, H)
# -> RMSNorm -> SiLU -> Linear(H, 2A); plus the two multipliers log_alpha, log_beta.
ACTOR_NET = _linear(OBS, H) + H + _linear(H, H) + H + _linear(H, 2 * ACT)
# The critic: encoder Linear(O+A, H) -> RMSNorm -> SiLU -> Linear(H, H); Q head Linear(H, H) -> RMSNorm ->
# SiLU -> Linear(H, K) plus zero_dist [K]; predictor Linear(H, H) -> RMSNorm -> SiLU -> Linear(H, H + 1).
CRITIC = (_linear(OBS + ACT, H) + H + _linear(H, H)
          + _linear(H, H) + H + _linear(H, K) + K
          + _linear(H, H) + H + _linear(H, H + 1))


def test_the_defaults_are_the_papers_dmc_widths():
    assert (CFG.actor_hidden, CFG.critic_hidden, CFG.actor_hidden_blocks, K) == (512, 512, 2, 151)


def test_parameter_counts_match_the_papers_layout_at_humanoid_sizes():
    (j_actor, j_critic), (t_actor, t_critic) = _jax_params(), _torch_params()
    assert _count_jax(j_actor) == ACTOR_NET == 320_042
    assert _count_torch(t_actor) == ACTOR_NET + 2
    assert _count_jax(j_critic) == _count_torch(t_critic) == CRITIC
    # three hidden blocks (the reading this replaced) would cost 1.82x the actor's parameters
    assert (ACTOR_NET + _linear(H, H) + H) / ACTOR_NET == pytest.approx(1.82, abs=0.01)


def test_layer_shapes_match_on_both_frameworks():
    (j_actor, j_critic), (t_actor, t_critic) = _jax_params(), _torch_params()
    widths = [(OBS, H), (H, H)]
    assert [tuple(b["linear"]["w"].shape) for b in j_actor["blocks"]] == widths
    assert [tuple(b.linear.weight.shape[::-1]) for b in t_actor.net.blocks] == widths
    assert j_actor["out"]["w"].shape == tuple(t_actor.net.out.weight.shape[::-1]) == (H, 2 * ACT)
    assert j_critic["q_out"]["w"].shape == (H, K) and j_critic["zero_dist"].shape == (K,)
    assert tuple(t_critic.zero_dist.shape) == (K,) and tuple(t_critic.pred_out.weight.shape) == (H + 1, H)


def _jax_linears(actor, critic):
    linears = [b["linear"] for b in actor["blocks"]] + [actor["out"]]
    linears += [critic[n]["linear"] for n in ("enc_in", "q_hidden", "pred_hidden")]
    return linears + [critic[n] for n in ("enc_out", "q_out", "pred_out")]


def _torch_linears(actor, critic):
    return [m for m in (*actor.modules(), *critic.modules()) if isinstance(m, torch.nn.Linear)]


def _weights_and_biases(framework):
    if framework == "jax":
        return [(np.asarray(p["w"]), np.asarray(p["b"])) for p in _jax_linears(*_jax_params())]
    return [(lin.weight.detach().numpy().T, lin.bias.detach().numpy())
            for lin in _torch_linears(*_torch_params())]


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_init_is_lecun_normal_with_zero_biases(framework):
    layers = _weights_and_biases(framework)
    assert len(layers) == 9
    for w, b in layers:
        fan_in = w.shape[0]
        assert np.all(b == 0)
        # std 1/sqrt(fan_in); the sample std of n draws has relative error ~ 1/sqrt(2n) (< 0.5% here).
        assert w.std() * np.sqrt(fan_in) == pytest.approx(1.0, rel=0.05)
        # truncated at 2 std of the underlying normal: |w| <= 2 / 0.8796 / sqrt(fan_in) = 2.27 / sqrt(fan_in)
        assert np.abs(w).max() * np.sqrt(fan_in) <= 2.0 / torch_nets.TRUNCATED_NORMAL_STD + 1e-5
    # A normal, not a uniform of the same std (whose bound is sqrt(3) = 1.73 / sqrt(fan_in)): on the
    # 512 x 512 layers some draws lie beyond 1.9 / sqrt(fan_in), and the kurtosis E[w^4] / E[w^2]^2 is the
    # normal truncated at +-2's (2.3655 by numerical integration; a uniform's is 1.8, a normal's 3).
    w = layers[1][0] * np.sqrt(H)
    assert np.abs(w).max() > 1.9
    assert np.mean(w ** 4) / np.mean(w ** 2) ** 2 == pytest.approx(2.3655, abs=0.03)


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_zero_dist_starts_at_hist0_and_the_output_bias_at_zero(framework):
    hist0 = np.asarray(_hist0())
    if framework == "jax":
        _, critic = _jax_params()
        zero_dist, bias = np.asarray(critic["zero_dist"]), np.asarray(critic["q_out"]["b"])
        scales = [np.asarray(critic[n]["scale"]) for n in ("enc_in", "q_hidden", "pred_hidden")]
    else:
        _, critic = _torch_params()
        zero_dist, bias = critic.zero_dist.detach().numpy(), critic.q_out.bias.detach().numpy()
        scales = [getattr(critic, n).scale.detach().numpy() for n in ("enc_in", "q_hidden", "pred_hidden")]
    np.testing.assert_array_equal(zero_dist, hist0)
    assert np.all(bias == 0) and all(np.all(s == 1) for s in scales)


def test_zero_dist_is_trained_and_scaled_by_40_in_the_logits():
    _, critic = _jax_params()
    z = jax.random.normal(jax.random.PRNGKey(2), (4, H))
    shifted = {**critic, "zero_dist": critic["zero_dist"] + 1.0}
    # logits move by exactly 40 per unit of zero_dist, and d(sum logits)/d(zero_dist) = 40 per row
    np.testing.assert_allclose(jax_nets.critic_q_logits(shifted, z) - jax_nets.critic_q_logits(critic, z),
                               40.0, rtol=1e-5)
    grad = jax.grad(lambda c: jnp.sum(jax_nets.critic_q_logits(c, z)))(critic)["zero_dist"]
    np.testing.assert_allclose(grad, 4 * 40.0)
