"""Reference lambda-returns (JAX and torch) against a brute-force n-step oracle in float64 numpy."""

import jax
import numpy as np
import pytest
import torch

from reppo_fast.kernels import reference_jax, reference_torch

GAMMA = 0.97


def _n_step(rewards, next_values, terminated, truncated, t, n, gamma):
    """G^(n)_t for one column: stops at the first terminated (no bootstrap) or truncated step."""
    total = 0.0
    for k in range(n):
        total += gamma**k * rewards[t + k]
        if terminated[t + k]:
            return total
        if truncated[t + k]:
            return total + gamma ** (k + 1) * next_values[t + k]
    return total + gamma**n * next_values[t + n - 1]


def oracle_lambda_returns(rewards, next_values, terminated, truncated, gamma, lmbda):
    """G^lambda_t = (1 - lmbda) sum_{n<L} lmbda^(n-1) G^(n) + lmbda^(L-1) G^(L), L = T - t; float64."""
    rewards, next_values = np.float64(rewards), np.float64(next_values)
    terminated, truncated = np.asarray(terminated) != 0, np.asarray(truncated) != 0
    num_steps, num_envs = rewards.shape
    out = np.zeros((num_steps, num_envs))
    for env in range(num_envs):
        cols = (rewards[:, env], next_values[:, env], terminated[:, env], truncated[:, env])
        for t in range(num_steps):
            horizon = num_steps - t
            n_step = [_n_step(*cols, t, n, gamma) for n in range(1, horizon + 1)]
            weights = [(1 - lmbda) * lmbda ** (n - 1) for n in range(1, horizon)] + [lmbda ** (horizon - 1)]
            out[t, env] = np.dot(weights, n_step)
    return out


def _case(seed, num_steps, num_envs, flags="random", flag_dtype=bool):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(num_steps, num_envs))
    next_values = rng.normal(size=(num_steps, num_envs)) * 5
    terminated = rng.random((num_steps, num_envs)) < 0.1
    truncated = rng.random((num_steps, num_envs)) < 0.1
    if flags == "all_terminated":
        terminated[:, 0] = True
    if flags == "all_truncated":
        truncated[:, 0] = True
    if flags == "both":
        terminated[::3, 0] = truncated[::3, 0] = True  # terminated must win
    return rewards, next_values, terminated.astype(flag_dtype), truncated.astype(flag_dtype)


def _run(framework, rewards, next_values, terminated, truncated, lmbda, dtype):
    if framework == "torch":
        args = [torch.tensor(rewards, dtype=dtype), torch.tensor(next_values, dtype=dtype),
                torch.tensor(terminated), torch.tensor(truncated)]
        return reference_torch.lambda_returns(*args, gamma=GAMMA, lmbda=lmbda).numpy()
    return np.asarray(reference_jax.lambda_returns(rewards.astype(dtype), next_values.astype(dtype),
                                                   terminated, truncated, gamma=GAMMA, lmbda=lmbda))


CASES = [(1, 1), (1, 4), (37, 5), (12, 1), (8, 3)]
FLAG_SETS = ["random", "all_terminated", "all_truncated", "both"]


@pytest.mark.parametrize("framework", ["jax", "torch"])
@pytest.mark.parametrize("lmbda", [0.0, 0.95, 1.0])
@pytest.mark.parametrize("shape", CASES)
@pytest.mark.parametrize("flags", FLAG_SETS)
@pytest.mark.parametrize("flag_dtype", [bool, np.float64])
def test_matches_n_step_oracle_float64(framework, lmbda, shape, flags, flag_dtype):
    seed = 10 * CASES.index(shape) + FLAG_SETS.index(flags)
    data = _case(seed, *shape, flags=flags, flag_dtype=flag_dtype)
    expected = oracle_lambda_returns(*data, GAMMA, lmbda)
    # float64 end to end: only reassociation error remains (~T ulp of |G| <= ~200).
    if framework == "jax":
        with jax.enable_x64(True):
            got = _run("jax", *data, lmbda, np.float64)
    else:
        got = _run("torch", *data, lmbda, torch.float64)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("framework", ["jax", "torch"])
@pytest.mark.parametrize("flag_dtype", [bool, np.float32])
def test_float32_matches_oracle(framework, flag_dtype):
    data = _case(3, 37, 5, flag_dtype=flag_dtype)
    expected = oracle_lambda_returns(*data, GAMMA, 0.95)
    got = _run(framework, *data, 0.95, np.float32 if framework == "jax" else torch.float32)
    assert got.dtype == np.float32
    # float32: each of <= 37 steps adds a few ulp of |G| (|G| ~ 30); 1e-5 relative leaves margin.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_nan_behind_terminated_does_not_leak(framework):
    rewards, next_values, terminated, truncated = _case(4, 6, 2)
    terminated[:], truncated[:] = False, False
    terminated[2, 0] = True
    next_values[2, 0] = np.nan  # the value of a terminal state is never used
    got = _run(framework, rewards, next_values, terminated, truncated, 0.95,
               np.float32 if framework == "jax" else torch.float32)
    assert np.isfinite(got).all()


def test_torch_does_not_mutate_inputs_and_gives_no_grad():
    data = _case(5, 9, 3, flag_dtype=np.float32)
    tensors = [torch.tensor(x) for x in data]
    tensors[0].requires_grad_(True)
    copies = [t.detach().clone() for t in tensors]
    out = reference_torch.lambda_returns(*tensors, gamma=GAMMA, lmbda=0.95)
    assert not out.requires_grad
    for before, after in zip(copies, tensors):
        assert torch.equal(before, after)


def test_jax_does_not_mutate_numpy_inputs_and_gives_no_grad():
    data = _case(6, 9, 3, flag_dtype=np.float32)
    data = tuple(x.astype(np.float32) for x in data)
    copies = [x.copy() for x in data]
    reference_jax.lambda_returns(*data, gamma=GAMMA, lmbda=0.95)
    for before, after in zip(copies, data):
        np.testing.assert_array_equal(before, after)
    def total_return(rewards):
        return reference_jax.lambda_returns(rewards, *data[1:], gamma=GAMMA, lmbda=0.95).sum()

    grad = jax.grad(total_return)(data[0])
    assert not np.asarray(grad).any()


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_bf16_inputs_return_float32(framework):
    rewards, next_values, terminated, truncated = _case(7, 5, 2)
    if framework == "torch":
        out = reference_torch.lambda_returns(torch.tensor(rewards, dtype=torch.bfloat16),
                                             torch.tensor(next_values, dtype=torch.bfloat16),
                                             torch.tensor(terminated), torch.tensor(truncated),
                                             gamma=GAMMA, lmbda=0.9)
        assert out.dtype == torch.float32
    else:
        out = reference_jax.lambda_returns(jax.numpy.asarray(rewards, jax.numpy.bfloat16),
                                           jax.numpy.asarray(next_values, jax.numpy.bfloat16),
                                           terminated, truncated, gamma=GAMMA, lmbda=0.9)
        assert out.dtype == np.float32
