"""The torch and JAX references agree in float32 on the same inputs: values and vector-Jacobian products.

Tolerance: 1e-5 relative (plus a small absolute floor for values near 0). Both compute the same
formula in float32; XLA and ATen differ only in the last ulp or two of exp/tanh/erf/log and in
summation order, which stays well below that.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reppo_fast.kernels import reference_jax, reference_torch

RTOL, ATOL = 1e-5, 1e-5


def _close(jax_value, torch_value):
    np.testing.assert_allclose(np.asarray(jax_value), torch_value.detach().numpy(), rtol=RTOL, atol=ATOL)


def _f32(rng, *shape, scale=1.0):
    return (rng.normal(size=shape) * scale).astype(np.float32)


@pytest.mark.parametrize("estimator", ["none", "sampled", "analytic"])
@pytest.mark.parametrize("batch,act", [(64, 21), (1, 1), (37, 5)])
def test_tanh_normal(estimator, batch, act):
    rng = np.random.default_rng(batch * act)
    mean, log_std, noise, old_mean, old_log_std = (_f32(rng, batch, act) for _ in range(5))
    log_std, old_log_std = 0.5 * log_std - 0.5, 0.5 * old_log_std - 0.5
    old = {"none": (), "analytic": (old_mean, old_log_std),
           "sampled": (old_mean, old_log_std, _f32(rng, 16, batch, act))}[estimator]
    cotangents = [_f32(rng, batch, act), _f32(rng, batch)] + ([_f32(rng, batch)] if old else [])

    def jax_fn(m, s):
        return tuple(o for o in reference_jax.tanh_normal(m, s, noise, *old) if o is not None)

    jax_out, vjp = jax.vjp(jax_fn, jnp.asarray(mean), jnp.asarray(log_std))
    jax_grads = vjp(tuple(jnp.asarray(c) for c in cotangents))

    args = [torch.tensor(mean, requires_grad=True), torch.tensor(log_std, requires_grad=True)]
    out = reference_torch.tanh_normal(*args, torch.tensor(noise), *(torch.tensor(a) for a in old))
    torch_out = tuple(o for o in out if o is not None)
    torch_grads = torch.autograd.grad(torch_out, args, [torch.tensor(c) for c in cotangents])
    assert len(jax_out) == len(torch_out) == len(cotangents)
    for a, b in zip(jax_out + tuple(jax_grads), torch_out + torch_grads):
        _close(a, b)


@pytest.mark.parametrize("num_bins,batch", [(151, 64), (7, 1), (37, 9)])
def test_hl_gauss(num_bins, batch):
    rng = np.random.default_rng(num_bins)
    v_min, v_max = 0.0, 150.0
    logits = _f32(rng, batch, num_bins, scale=3.0)
    targets = rng.uniform(v_min - 10, v_max + 10, size=batch).astype(np.float32)
    upstream = _f32(rng, batch)
    kwargs = {"v_min": v_min, "v_max": v_max}

    loss_j, vjp = jax.vjp(lambda x: reference_jax.hl_gauss_ce(x, jnp.asarray(targets), **kwargs),
                          jnp.asarray(logits))
    (grad_j,) = vjp(jnp.asarray(upstream))
    x = torch.tensor(logits, requires_grad=True)
    loss_t = reference_torch.hl_gauss_ce(x, torch.tensor(targets), **kwargs)
    (grad_t,) = torch.autograd.grad(loss_t, x, torch.tensor(upstream))
    _close(loss_j, loss_t)
    _close(grad_j, grad_t)

    _close(reference_jax.hl_gauss_hist(jnp.asarray(targets), num_bins=num_bins, **kwargs),
           reference_torch.hl_gauss_hist(torch.tensor(targets), num_bins=num_bins, **kwargs))
    q_j, vjp = jax.vjp(lambda x: reference_jax.hl_gauss_decode(x, **kwargs), jnp.asarray(logits))
    (dq_j,) = vjp(jnp.asarray(upstream))
    x = torch.tensor(logits, requires_grad=True)
    q_t = reference_torch.hl_gauss_decode(x, **kwargs)
    (dq_t,) = torch.autograd.grad(q_t, x, torch.tensor(upstream))
    np.testing.assert_allclose(np.asarray(q_j), q_t.detach().numpy(), rtol=RTOL, atol=1e-3)  # |q| ~ 75
    _close(dq_j, dq_t)


@pytest.mark.parametrize("num_steps,num_envs", [(128, 64), (1, 1), (37, 5)])
@pytest.mark.parametrize("lmbda", [0.0, 0.95, 1.0])
def test_lambda_returns(num_steps, num_envs, lmbda):
    rng = np.random.default_rng(num_steps)
    rewards, next_values = _f32(rng, num_steps, num_envs), _f32(rng, num_steps, num_envs, scale=10.0)
    terminated = rng.random((num_steps, num_envs)) < 0.05
    truncated = (rng.random((num_steps, num_envs)) < 0.05).astype(np.float32)
    kwargs = {"gamma": 0.99, "lmbda": lmbda}
    got_j = reference_jax.lambda_returns(rewards, next_values, terminated, truncated, **kwargs)
    tensors = (torch.tensor(a) for a in (rewards, next_values, terminated, truncated))
    got_t = reference_torch.lambda_returns(*tensors, **kwargs)
    _close(got_j, got_t)
