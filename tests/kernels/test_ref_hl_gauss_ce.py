"""Reference HL-Gauss histogram, cross-entropy and decode (JAX and torch) against float64 oracles.

The histogram oracle integrates the Gaussian pdf over each bin with scipy.integrate.quad, so it shares
no erf algebra with the code under test.
"""

import contextlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import integrate, special

from reppo_fast.kernels import reference_jax, reference_torch

V_MIN, V_MAX = -15.0, 15.0


def oracle_hist(targets, num_bins, v_min, v_max, sigma_ratio=0.75):
    width = (v_max - v_min) / (num_bins - 1)
    edges = v_min + width * (np.arange(num_bins + 1) - 0.5)
    sigma = sigma_ratio * width
    out = np.zeros((len(targets), num_bins))
    for row, y in enumerate(np.clip(np.float64(targets), v_min, v_max)):
        def pdf(x, y=y):
            return math.exp(-0.5 * ((x - y) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        # Bins beyond 12 sigma hold < 1e-32 of the mass: quad would return ~0 for them anyway.
        near = np.abs(edges[:-1] - y) < 12 * sigma + width
        for i in np.flatnonzero(near):
            out[row, i] = integrate.quad(pdf, edges[i], edges[i + 1], epsabs=1e-15, epsrel=1e-13)[0]
    return out / out.sum(-1, keepdims=True)  # the sum of bin integrals is the mass on [edge_0, edge_K]


def _targets(rng, batch):
    # Inside the support, exactly on the bounds, and well outside it (clipped).
    base = np.array([0.0, V_MIN, V_MAX, V_MIN - 40.0, V_MAX + 3.0, 0.37])
    return np.concatenate([base, rng.uniform(V_MIN, V_MAX, size=batch)])[:batch]


def _ops(framework):
    return reference_jax if framework == "jax" else reference_torch


def _to(framework, x, dtype):
    return jnp.asarray(x, dtype) if framework == "jax" else torch.tensor(x, dtype=dtype)


def _float64(framework):
    return jax.enable_x64(True) if framework == "jax" else contextlib.nullcontext()


FRAMEWORKS = ["jax", "torch"]
F64 = {"jax": jnp.float64, "torch": torch.float64}
F32 = {"jax": jnp.float32, "torch": torch.float32}


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("num_bins,batch", [(151, 8), (7, 6), (37, 1), (2, 3)])
def test_hist_matches_quadrature(framework, num_bins, batch):
    targets = _targets(np.random.default_rng(num_bins), batch)
    expected = oracle_hist(targets, num_bins, V_MIN, V_MAX)
    with _float64(framework):
        got = np.asarray(_ops(framework).hl_gauss_hist(_to(framework, targets, F64[framework]),
                                                       num_bins=num_bins, v_min=V_MIN, v_max=V_MAX))
    assert got.shape == (batch, num_bins) and got.dtype == np.float64
    # float64 erf differences: ~1e-16 absolute per bin; quad is good to ~1e-14.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    got32 = np.asarray(_ops(framework).hl_gauss_hist(_to(framework, targets, F32[framework]),
                                                     num_bins=num_bins, v_min=V_MIN, v_max=V_MAX))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32.sum(-1), 1.0, atol=1e-6)
    # float32: erf near +-1 is good to an ulp (6e-8) and edges carry ~1e-6 relative rounding.
    np.testing.assert_allclose(got32, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("num_bins,batch", [(151, 8), (7, 6), (37, 1)])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_loss_and_gradient_float64(framework, num_bins, batch, scale):
    rng = np.random.default_rng(num_bins + int(scale))
    targets = _targets(rng, batch)
    logits = rng.normal(size=(batch, num_bins)) * scale  # 1e4: softmax is one-hot, log_softmax ~ -1e4
    upstream = rng.normal(size=batch)
    probs = oracle_hist(targets, num_bins, V_MIN, V_MAX)
    expected_loss = -(probs * special.log_softmax(logits, axis=-1)).sum(-1)
    expected_grad = upstream[:, None] * (special.softmax(logits, axis=-1) - probs)

    ops = _ops(framework)
    with _float64(framework):
        if framework == "jax":
            loss, vjp = jax.vjp(lambda x: ops.hl_gauss_ce(x, jnp.asarray(targets), v_min=V_MIN, v_max=V_MAX),
                                jnp.asarray(logits))
            (grad,) = vjp(jnp.asarray(upstream))
        else:
            x = torch.tensor(logits, requires_grad=True)
            loss = ops.hl_gauss_ce(x, torch.tensor(targets), v_min=V_MIN, v_max=V_MAX)
            (grad,) = torch.autograd.grad(loss, x, torch.tensor(upstream))
            loss = loss.detach()
    # Relative to the loss magnitude (up to ~1e4 * sqrt(K) for the extreme logits).
    np.testing.assert_allclose(np.asarray(loss), expected_loss, rtol=1e-11, atol=1e-11 * scale)
    np.testing.assert_allclose(np.asarray(grad), expected_grad, rtol=0, atol=1e-11)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_float32_loss_against_float64_oracle(framework):
    rng = np.random.default_rng(0)
    targets, logits = _targets(rng, 16), rng.normal(size=(16, 151)) * 3
    expected = -(oracle_hist(targets, 151, V_MIN, V_MAX) * special.log_softmax(logits, axis=-1)).sum(-1)
    got = _ops(framework).hl_gauss_ce(_to(framework, logits, F32[framework]),
                                      _to(framework, targets, F32[framework]), v_min=V_MIN, v_max=V_MAX)
    assert got.dtype == (np.float32 if framework == "jax" else torch.float32)
    # float32 log_softmax over 151 bins with |logit| <~ 10: a few ulp of ~10.
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_minus_inf_logits_where_target_has_no_mass(framework):
    # Target at v_min: bins > ~10 sigma away get exactly p = 0 (erf saturates), so -inf logits there
    # are legal and must give a finite loss and gradient (0 * -inf would be NaN without the select).
    logits = np.random.default_rng(1).normal(size=(2, 151))
    logits[:, 100:] = -np.inf
    targets = np.array([V_MIN, V_MIN + 0.1])
    ops = _ops(framework)
    if framework == "jax":
        loss, vjp = jax.vjp(lambda x: ops.hl_gauss_ce(x, jnp.asarray(targets, jnp.float32), v_min=V_MIN,
                                                      v_max=V_MAX), jnp.asarray(logits, jnp.float32))
        (grad,) = vjp(jnp.ones(2, jnp.float32))
    else:
        x = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
        loss = ops.hl_gauss_ce(x, torch.tensor(targets, dtype=torch.float32), v_min=V_MIN, v_max=V_MAX)
        (grad,) = torch.autograd.grad(loss, x, torch.ones(2))
        loss = loss.detach()
    assert np.isfinite(np.asarray(loss)).all() and np.isfinite(np.asarray(grad)).all()
    assert not np.asarray(grad)[:, 100:].any()


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("num_bins", [151, 7])
def test_decode_matches_expectation(framework, num_bins):
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(5, num_bins)) * 4
    expected = special.softmax(logits, axis=-1) @ np.linspace(V_MIN, V_MAX, num_bins)
    with _float64(framework):
        logits64 = _to(framework, logits, F64[framework])
        got = _ops(framework).hl_gauss_decode(logits64, v_min=V_MIN, v_max=V_MAX)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=0, atol=1e-12)
    got32 = _ops(framework).hl_gauss_decode(_to(framework, logits, F32[framework]), v_min=V_MIN, v_max=V_MAX)
    np.testing.assert_allclose(np.asarray(got32), expected, rtol=0, atol=1e-5)  # float32 on values up to 15


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_decode_of_hist_logits_recovers_target(framework):
    # log(hist(y)) as logits decodes to about y inside the support (a smoke check of the pair).
    targets = np.array([-7.3, 0.0, 11.2])
    ops = _ops(framework)
    with _float64(framework):
        probs = ops.hl_gauss_hist(_to(framework, targets, F64[framework]), num_bins=151, v_min=V_MIN,
                                  v_max=V_MAX)
        logits = np.log(np.maximum(np.asarray(probs), 1e-300))
        q = ops.hl_gauss_decode(_to(framework, logits, F64[framework]), v_min=V_MIN, v_max=V_MAX)
    np.testing.assert_allclose(np.asarray(q), targets, atol=1e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_targets_get_no_gradient_and_bf16_computes_in_float32(framework):
    ops = _ops(framework)
    if framework == "jax":
        def loss_of_targets(y):
            return ops.hl_gauss_ce(jnp.ones((3, 7)), y, v_min=V_MIN, v_max=V_MAX).sum()

        grad = jax.grad(loss_of_targets)(jnp.ones(3))
        assert not np.asarray(grad).any()
        out = ops.hl_gauss_ce(jnp.ones((3, 7), jnp.bfloat16), jnp.ones(3), v_min=V_MIN, v_max=V_MAX)
        assert out.dtype == jnp.float32
    else:
        y = torch.ones(3, requires_grad=True)
        out = ops.hl_gauss_ce(torch.ones(3, 7, dtype=torch.bfloat16), y, v_min=V_MIN, v_max=V_MAX)
        assert out.dtype == torch.float32 and not out.requires_grad


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bad_support_raises(framework):
    ops = _ops(framework)
    with pytest.raises(ValueError, match="num_bins"):
        ops.hl_gauss_hist(_to(framework, [0.0], F32[framework]), num_bins=1, v_min=0.0, v_max=1.0)
    with pytest.raises(ValueError, match="v_min < v_max"):
        ops.hl_gauss_hist(_to(framework, [0.0], F32[framework]), num_bins=5, v_min=1.0, v_max=1.0)
