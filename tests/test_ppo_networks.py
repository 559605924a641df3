"""PPO's networks against Brax itself (docs/algorithms.md section 10), on both paths and for both
cfg.ppo.policy_std forms: the paper's DMC sizes give Brax make_ppo_networks' parameter count and layer
shapes, the initialisation is LeCun uniform with zero biases, the `state` std is Brax's tanh_normal
softplus(raw) + 0.001 of the MLP's second half, and our policy and value networks compute what Brax's do
from the same weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from brax.training import distribution
from brax.training.agents.ppo import networks as brax_ppo

from reppo_fast.config import preset_config
from reppo_fast.on_jax.ppo import networks as jn
from reppo_fast.on_torch.ppo import networks as tn

O, A = 67, 21  # HumanoidRun's observation and action sizes
DMC = preset_config("dmc", "dmc", "ppo")  # mujoco_playground's brax_ppo_config: Brax's network defaults
FORMS = ["state", "scalar"]
FRAMEWORKS = ["jax", "torch"]


def _brax_networks(policy_std):
    """Brax's PPO networks at its default sizes. `state` is Brax's default tanh_normal policy (the MLP
    outputs 2A); for `scalar` Brax's nearest form is the `normal` policy with a scalar std_param [A] after
    an A-output mean layer, which has our `scalar` layout (Brax uses std_param itself as the std, without
    the softplus, so only the layout is compared)."""
    if policy_std == "state":
        return brax_ppo.make_ppo_networks(O, A)
    return brax_ppo.make_ppo_networks(O, A, distribution_type="normal", noise_std_type="scalar")


def _brax_dense_layers(policy_std, params):
    """Brax's policy Dense layers in order, as [{"kernel", "bias"}, ...]."""
    p = params["params"]
    if policy_std == "state":
        return [p[f"hidden_{i}"] for i in range(len(p))]
    mlp = p["MLP_0"]
    return [mlp[f"hidden_{i}"] for i in range(len(mlp))] + [p["Dense_0"]]


def _ours(framework, policy_std, seed=0, cfg=DMC):
    """Our (actor, critic) at cfg's sizes, and their dense layers as float64 numpy [(w [in, out], b)]."""
    if framework == "jax":
        k_actor, k_critic = jax.random.split(jax.random.PRNGKey(seed))
        actor = jn.init_actor(k_actor, O, A, cfg.actor_hidden, cfg.actor_hidden_blocks, policy_std)
        critic = jn.init_critic(k_critic, O, cfg.critic_hidden, cfg.critic_hidden_blocks)
        layers = lambda ps: [(np.asarray(p["w"], np.float64), np.asarray(p["b"], np.float64))  # noqa: E731
                             for p in ps]
        return actor, critic, layers(actor["net"]), layers(critic)
    torch.manual_seed(seed)
    actor = tn.init_actor(O, A, cfg.actor_hidden, cfg.actor_hidden_blocks, policy_std)
    critic = tn.init_critic(O, cfg.critic_hidden, cfg.critic_hidden_blocks)
    layers = lambda ms: [(m.weight.detach().double().numpy().T, m.bias.detach().double().numpy())  # noqa: E731
                         for m in ms]
    return actor, critic, layers(actor.net), layers(critic.net)


def _std_param(framework, actor):
    if framework == "jax":
        return np.asarray(actor["std_param"]) if "std_param" in actor else None
    return None if actor.std_param is None else actor.std_param.detach().numpy()


def _param_count(framework, net):
    if framework == "jax":
        return sum(x.size for x in jax.tree.leaves(net))
    return sum(p.numel() for p in net.parameters())


def _apply(framework, actor, critic, obs):
    """(mean, std, V) as float64 numpy from our networks on obs [B, O]."""
    if framework == "jax":
        mean, log_std = jn.actor_apply(actor, jnp.asarray(obs, jnp.float32))
        value = jn.critic_apply(critic, jnp.asarray(obs, jnp.float32))
    else:
        with torch.no_grad():
            mean, log_std = tn.actor_apply(actor, torch.as_tensor(obs, dtype=torch.float32))
            value = tn.critic_apply(critic, torch.as_tensor(obs, dtype=torch.float32))
    f64 = lambda x: np.asarray(x, np.float64)  # noqa: E731
    return f64(mean), np.exp(f64(log_std)), f64(value)


def _mlp64(layers, x):
    """The MLP in float64: swish(x) = x sigmoid(x) after every layer but the last."""
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = x / (1.0 + np.exp(-x))
    return x


def _obs(n=256, seed=1):
    return np.random.default_rng(seed).normal(size=(n, O))


def test_the_dmc_preset_has_brax_make_ppo_networks_default_sizes():
    assert (DMC.actor_hidden, DMC.actor_hidden_blocks, DMC.critic_hidden, DMC.critic_hidden_blocks) == \
        (32, 4, 256, 5)
    assert DMC.ppo.policy_std == "state"


@pytest.mark.parametrize("policy_std", FORMS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_parameter_counts_and_layer_shapes_equal_brax(framework, policy_std):
    brax = _brax_networks(policy_std)
    b_policy = brax.policy_network.init(jax.random.PRNGKey(0))
    b_value = brax.value_network.init(jax.random.PRNGKey(0))
    actor, critic, a_layers, c_layers = _ours(framework, policy_std)
    assert _param_count(framework, actor) == sum(x.size for x in jax.tree.leaves(b_policy))
    assert _param_count(framework, critic) == sum(x.size for x in jax.tree.leaves(b_value))
    assert [(w.shape, b.shape) for w, b in a_layers] == \
        [(p["kernel"].shape, p["bias"].shape) for p in _brax_dense_layers(policy_std, b_policy)]
    assert [(w.shape, b.shape) for w, b in c_layers] == \
        [(p["kernel"].shape, p["bias"].shape) for p in _brax_dense_layers("state", b_value)]
    std_param = _std_param(framework, actor)
    if policy_std == "state":
        assert std_param is None and a_layers[-1][0].shape == (32, 2 * A)
    else:
        assert std_param.shape == b_policy["params"]["std_param"]["value"].shape == (A,)
        np.testing.assert_array_equal(std_param, np.full(A, jn.STD_PARAM_INIT, np.float32))


def _std_tolerance(n):
    """Five standard errors of the sample std of n draws of U(-b, b): Var(w^2) / sigma^4 = (b^4/5 - b^4/9)
    / (b^2/3)^2 = 0.8, so the sample variance's relative error is sqrt(0.8 / n) and the std's half that."""
    return 5.0 * 0.5 * np.sqrt(0.8 / n)


@pytest.mark.parametrize("policy_std", FORMS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_kernels_are_lecun_uniform_and_biases_zero(framework, policy_std):
    """lecun_uniform: U(-sqrt(3/fan_in), sqrt(3/fan_in)), whose std is sqrt(1/fan_in)."""
    _, _, a_layers, c_layers = _ours(framework, policy_std)
    layers = a_layers + c_layers
    assert any(w.size >= 256 * 256 for w, _ in layers)  # the critic's hidden layers: a 0.9% tolerance
    for w, b in layers:
        fan_in, n = w.shape[0], w.size
        bound = np.sqrt(3.0 / fan_in)
        np.testing.assert_array_equal(b, 0.0)
        assert np.max(np.abs(w)) <= bound
        # P(max |w| < bound (1 - 20/n)) = (1 - 20/n)^n ~ e^-20: the range really reaches the bound.
        assert np.max(np.abs(w)) >= bound * (1.0 - 20.0 / n)
        assert abs(np.std(w) / np.sqrt(1.0 / fan_in) - 1.0) < min(_std_tolerance(n), 0.05), w.shape
        assert abs(np.mean(w)) < 5.0 * np.sqrt(1.0 / fan_in / n), w.shape


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_state_std_is_softplus_of_the_second_half_plus_min_std_and_varies_with_the_state(framework):
    actor, critic, a_layers, _ = _ours(framework, "state")
    obs = _obs()
    out = _mlp64(a_layers, obs)
    expected_std = np.log1p(np.exp(out[:, A:])) + 1e-3
    mean, std, _ = _apply(framework, actor, critic, obs)
    np.testing.assert_allclose(mean, out[:, :A], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, expected_std, rtol=1e-5, atol=1e-7)
    # softplus(0) + 0.001 = 0.694 where the zero-bias outputs are small; per state, not one value per action.
    assert abs(np.mean(std) - (np.log(2.0) + 1e-3)) < 0.05
    assert np.min(np.ptp(std, axis=0)) > 0.05


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_scalar_std_is_one_value_per_action_for_every_state(framework):
    actor, critic, a_layers, _ = _ours(framework, "scalar")
    obs = _obs()
    mean, std, _ = _apply(framework, actor, critic, obs)
    np.testing.assert_allclose(mean, _mlp64(a_layers, obs), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.ptp(std, axis=0), 0.0)
    np.testing.assert_allclose(std[0], np.log1p(np.exp(1.0)) + 1e-3, rtol=1e-6)  # 1.3143


def _brax_params(a_layers, c_layers):
    """Our float64 layers as Brax's state-form policy and value parameter trees."""
    tree = lambda layers: {"params": {f"hidden_{i}": {"kernel": jnp.asarray(w, jnp.float32),  # noqa: E731
                                                      "bias": jnp.asarray(b, jnp.float32)}
                                      for i, (w, b) in enumerate(layers)}}
    return tree(a_layers), tree(c_layers)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_state_policy_and_value_compute_what_brax_computes_from_the_same_weights(framework):
    """Brax's own apply and NormalTanhDistribution(A).create_dist: (loc, softplus(scale) + 0.001)."""
    actor, critic, a_layers, c_layers = _ours(framework, "state", seed=2)
    brax = _brax_networks("state")
    b_policy, b_value = _brax_params(a_layers, c_layers)
    obs = _obs(seed=3)
    logits = brax.policy_network.apply(None, b_policy, jnp.asarray(obs, jnp.float32))
    dist = distribution.NormalTanhDistribution(A).create_dist(logits)
    value = brax.value_network.apply(None, b_value, jnp.asarray(obs, jnp.float32))
    mean, std, ours_value = _apply(framework, actor, critic, obs)
    np.testing.assert_allclose(mean, dist.loc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, dist.scale, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours_value, value, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_log_std_is_finite_with_finite_gradients_at_extreme_raw_outputs(framework):
    """softplus underflows to 0 for very negative raw (log_std -> log 0.001) and ~ raw for large raw."""
    raw = np.array([-1e30, -1e4, -100.0, 0.0, 100.0, 1e4, 1e30], np.float32)
    if framework == "jax":
        log_std = np.asarray(jn.log_std_of(jnp.asarray(raw)))
        grad = np.asarray(jax.grad(lambda r: jnp.sum(jn.log_std_of(r)))(jnp.asarray(raw)))
    else:
        r = torch.tensor(raw, requires_grad=True)
        out = tn.log_std_of(r)
        out.sum().backward()
        log_std, grad = out.detach().numpy(), r.grad.numpy()
    assert np.all(np.isfinite(log_std)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(log_std[:2], np.log(1e-3), rtol=1e-6)
    np.testing.assert_allclose(log_std[-1], np.log(1e30), rtol=1e-6)
    np.testing.assert_allclose(grad[3], 0.5 / (np.log(2.0) + 1e-3), rtol=1e-5)  # sigmoid / (softplus + eps)


def test_an_unknown_policy_std_form_is_refused():
    with pytest.raises(ValueError, match="policy_std"):
        jn.init_actor(jax.random.PRNGKey(0), O, A, 32, 4, "log")
    with pytest.raises(ValueError, match="policy_std"):
        tn.init_actor(O, A, 32, 4, "log")
