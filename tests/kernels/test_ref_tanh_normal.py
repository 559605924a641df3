"""Reference tanh-Gaussian sample / log-prob / KL (JAX and torch) against independent float64 oracles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads
from scipy import stats
from torch.distributions import Normal
from torch.distributions.transforms import TanhTransform

from reppo_fast.kernels import reference_jax, reference_torch

FRAMEWORKS = ["jax", "torch"]


@pytest.fixture
def inputs(tanh_normal_inputs):
    """`inputs(seed, batch=5, act=3, samples=16)`: conftest's six tanh_normal inputs, in float64."""
    return lambda seed, batch=5, act=3, samples=16: tanh_normal_inputs(seed, batch, act, samples, np.float64)


def _call64(framework, *args):
    """The reference in float64 on numpy inputs; returns numpy arrays (kl may be None)."""
    if framework == "jax":
        with jax.enable_x64(True):
            out = reference_jax.tanh_normal(*(None if a is None else jnp.asarray(a, jnp.float64)
                                              for a in args))
            return tuple(None if o is None else np.asarray(o) for o in out)
    out = reference_torch.tanh_normal(*(None if a is None else torch.tensor(a, dtype=torch.float64)
                                        for a in args))
    return tuple(None if o is None else o.detach().numpy() for o in out)


def _log_normal(x, loc, log_scale):
    return stats.norm.logpdf(x, loc=loc, scale=np.exp(log_scale))


def _analytic_kl_np(mean, log_std, old_mean, old_log_std):
    # KL(N0 || N1) = log(s1/s0) + (s0^2 + (m0 - m1)^2) / (2 s1^2) - 1/2, per dimension.
    s0, s1 = np.exp(old_log_std), np.exp(log_std)
    return (np.log(s1 / s0) + (s0**2 + (old_mean - mean) ** 2) / (2 * s1**2) - 0.5).sum(-1)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("act", [3, 7])
def test_log_prob_matches_torch_distributions(framework, act, inputs):
    mean, log_std, noise = inputs(act, act=act)[:3]
    u = mean + np.exp(log_std) * noise
    assert np.abs(u).max() < 10  # TanhTransform's F.softplus linearises past 20 (error ~1e-9)
    u_t = torch.tensor(u)
    expected = (Normal(torch.tensor(mean), torch.tensor(log_std).exp()).log_prob(u_t)
                - TanhTransform().log_abs_det_jacobian(u_t, torch.tanh(u_t))).sum(-1).numpy()
    action, log_prob, kl = _call64(framework, mean, log_std, noise)
    assert kl is None
    np.testing.assert_allclose(action, np.tanh(u), rtol=1e-14, atol=0)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_log_prob_stays_finite_for_saturated_pre_tanh(framework):
    mean = np.linspace(-30.0, 30.0, 24).reshape(8, 3)  # |u| up to ~30, where 1 - tanh^2 underflows
    log_std = np.full_like(mean, -3.0)
    noise = np.random.default_rng(0).normal(size=mean.shape)
    u = mean + np.exp(log_std) * noise
    # Hand-derived: 1 - tanh(u)^2 = 4 e^{-2|u|} / (1 + e^{-2|u|})^2.
    log_det = -2.0 * (np.abs(u) + np.log1p(np.exp(-2.0 * np.abs(u))) - np.log(2.0))
    expected = (_log_normal(u, mean, log_std) - log_det).sum(-1)
    _, log_prob, _ = _call64(framework, mean, log_std, noise)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-13, atol=1e-12)
    ops = reference_jax if framework == "jax" else reference_torch
    args = [jnp.asarray(a, jnp.float32) if framework == "jax" else torch.tensor(a, dtype=torch.float32)
            for a in (mean, log_std, noise)]
    log_prob32 = np.asarray(ops.tanh_normal(*args).log_prob)
    assert np.isfinite(log_prob32).all()
    # float32 on values up to ~180: u itself is rounded to ~2e-6, which moves 2|u| by ~4e-6 per dim.
    np.testing.assert_allclose(log_prob32, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sampled_kl_matches_hand_computation(framework, inputs):
    mean, log_std, noise, old_mean, old_log_std, old_noise = inputs(1)
    u = old_mean + np.exp(old_log_std) * old_noise  # [S, B, A]
    expected = (_log_normal(u, old_mean, old_log_std) - _log_normal(u, mean, log_std)).sum(-1).mean(0)
    kl = _call64(framework, mean, log_std, noise, old_mean, old_log_std, old_noise)[2]
    np.testing.assert_allclose(kl, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_analytic_kl_matches_closed_form_and_monte_carlo(framework, inputs):
    mean, log_std, noise, old_mean, old_log_std, _ = inputs(2, batch=3)
    kl = _call64(framework, mean, log_std, noise, old_mean, old_log_std)[2]
    expected = _analytic_kl_np(mean, log_std, old_mean, old_log_std)
    np.testing.assert_allclose(kl, expected, rtol=1e-12, atol=1e-12)
    # Independent check: E_old[log p_old(u) - log p_new(u)] by Monte Carlo in float64.
    u = old_mean + np.exp(old_log_std) * np.random.default_rng(3).normal(size=(200_000, *mean.shape))
    per_sample = (_log_normal(u, old_mean, old_log_std) - _log_normal(u, mean, log_std)).sum(-1)
    stderr = per_sample.std(0) / np.sqrt(len(per_sample))
    assert (np.abs(kl - per_sample.mean(0)) < 5 * stderr).all()  # 5 standard errors: no flaky failures


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sampled_kl_with_many_samples_matches_closed_form(framework, inputs):
    mean, log_std, noise, old_mean, old_log_std, old_noise = inputs(4, batch=2, samples=20_000)
    kl = _call64(framework, mean, log_std, noise, old_mean, old_log_std, old_noise)[2]
    u = old_mean + np.exp(old_log_std) * old_noise
    per_sample = (_log_normal(u, old_mean, old_log_std) - _log_normal(u, mean, log_std)).sum(-1)
    stderr = per_sample.std(0) / np.sqrt(len(per_sample))
    # The estimator is unbiased: within 5 Monte-Carlo standard errors of the exact KL.
    assert (np.abs(kl - _analytic_kl_np(mean, log_std, old_mean, old_log_std)) < 5 * stderr).all()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_kl_of_a_policy_with_itself_is_zero(framework, inputs):
    mean, log_std, noise, _, _, old_noise = inputs(5)
    assert not _call64(framework, mean, log_std, noise, mean, log_std)[2].any()  # analytic: exactly 0
    sampled = _call64(framework, mean, log_std, noise, mean, log_std, old_noise)[2]
    np.testing.assert_allclose(sampled, 0.0, atol=1e-13)  # exp(s) * exp(-s) is 1 only to an ulp


def _torch_fn(noise, old_mean, old_log_std, old_noise):
    def fn(mean, log_std):
        return tuple(reference_torch.tanh_normal(mean, log_std, noise, old_mean, old_log_std, old_noise))
    return fn


@pytest.mark.parametrize("estimator", ["sampled", "analytic"])
def test_torch_gradients_match_finite_differences(estimator, inputs):
    mean, log_std, noise, old_mean, old_log_std, old_noise = (torch.tensor(a) for a in inputs(6, samples=4))
    fn = _torch_fn(noise, old_mean, old_log_std, old_noise if estimator == "sampled" else None)
    # gradcheck compares the full float64 Jacobian of (action, log_prob, kl) with central differences.
    assert torch.autograd.gradcheck(fn, (mean.requires_grad_(), log_std.requires_grad_()))


@pytest.mark.parametrize("estimator", ["sampled", "analytic"])
def test_jax_gradients_match_finite_differences_and_torch(estimator, inputs):
    mean, log_std, noise, old_mean, old_log_std, old_noise = inputs(7, samples=4)
    old_noise = old_noise if estimator == "sampled" else None
    rng = np.random.default_rng(8)
    cotangents = (rng.normal(size=mean.shape), rng.normal(size=mean.shape[0]), rng.normal(size=mean.shape[0]))
    with jax.enable_x64(True):
        fixed = [None if a is None else jnp.asarray(a) for a in (noise, old_mean, old_log_std, old_noise)]

        def fn(m, s):
            return tuple(reference_jax.tanh_normal(m, s, *fixed))

        check_grads(fn, (jnp.asarray(mean), jnp.asarray(log_std)), order=1, modes=["rev"], eps=1e-6)
        _, vjp = jax.vjp(fn, jnp.asarray(mean), jnp.asarray(log_std))
        jax_grads = [np.asarray(g) for g in vjp(tuple(jnp.asarray(c) for c in cotangents))]
    args = [torch.tensor(mean, requires_grad=True), torch.tensor(log_std, requires_grad=True)]
    fixed = (None if a is None else torch.tensor(a) for a in (noise, old_mean, old_log_std, old_noise))
    outs = _torch_fn(*fixed)(*args)
    torch_grads = torch.autograd.grad(outs, args, [torch.tensor(c) for c in cotangents])
    for got, expected in zip(jax_grads, torch_grads):
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("estimator", ["sampled", "analytic"])
def test_no_gradient_reaches_the_old_policy(estimator, inputs):
    mean, log_std, noise, old_mean, old_log_std, old_noise = inputs(9)
    old_noise = old_noise if estimator == "sampled" else None
    frozen = [torch.tensor(a, requires_grad=True) for a in (old_mean, old_log_std)]
    out = reference_torch.tanh_normal(torch.tensor(mean, requires_grad=True), torch.tensor(log_std),
                                      torch.tensor(noise), *frozen,
                                      None if old_noise is None else torch.tensor(old_noise))
    upstream = torch.randn_like(out.kl)
    assert torch.autograd.grad(out.kl, frozen, upstream, allow_unused=True) == (None, None)

    def kl_of_old(m0, s0):
        sampled = None if old_noise is None else jnp.asarray(old_noise, jnp.float32)
        return reference_jax.tanh_normal(jnp.asarray(mean, jnp.float32), jnp.asarray(log_std, jnp.float32),
                                         jnp.asarray(noise, jnp.float32), m0, s0, sampled).kl

    _, vjp = jax.vjp(kl_of_old, jnp.asarray(old_mean, jnp.float32), jnp.asarray(old_log_std, jnp.float32))
    for grad in vjp(jnp.asarray(np.random.default_rng(0).normal(size=mean.shape[0]), jnp.float32)):
        assert not np.asarray(grad).any()


def test_torch_does_not_mutate_inputs(inputs):
    tensors = [torch.tensor(a, dtype=torch.float32) for a in inputs(10)]
    copies = [t.clone() for t in tensors]
    reference_torch.tanh_normal(*tensors)
    assert all(torch.equal(a, b) for a, b in zip(tensors, copies))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bf16_computes_in_float32_and_bad_arguments_raise(framework, inputs,
                                                         assert_tanh_normal_argument_errors):
    ops = reference_jax if framework == "jax" else reference_torch
    if framework == "jax":
        args = [jnp.asarray(a, jnp.bfloat16) for a in inputs(11)]
    else:
        args = [torch.tensor(a, dtype=torch.bfloat16) for a in inputs(11)]
    out = ops.tanh_normal(*args)
    assert all(str(o.dtype).endswith("float32") for o in out)
    assert_tanh_normal_argument_errors(ops.tanh_normal, *args)
