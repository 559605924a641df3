"""Reference lambda-returns (JAX and torch) against a brute-force n-step oracle in float64 numpy.

The oracle and the random rollouts are fixtures of tests/kernels/conftest.py (`oracle_lambda_returns`,
`rollout`), shared with the Pallas and Triton tests."""

import jax
import numpy as np
import pytest
import torch

from reppo_fast.kernels import reference_jax, reference_torch

GAMMA = 0.97


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
def test_matches_n_step_oracle_float64(framework, lmbda, shape, flags, flag_dtype, rollout,
                                       oracle_lambda_returns):
    seed = 10 * CASES.index(shape) + FLAG_SETS.index(flags)
    data = rollout(seed, *shape, flags=flags, flag_dtype=flag_dtype)
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
def test_float32_matches_oracle(framework, flag_dtype, rollout, oracle_lambda_returns):
    data = rollout(3, 37, 5, flag_dtype=flag_dtype)
    expected = oracle_lambda_returns(*data, GAMMA, 0.95)
    got = _run(framework, *data, 0.95, np.float32 if framework == "jax" else torch.float32)
    assert got.dtype == np.float32
    # float32: each of <= 37 steps adds a few ulp of |G| (|G| ~ 30); 1e-5 relative leaves margin.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_nan_behind_terminated_does_not_leak(framework, rollout):
    rewards, next_values, terminated, truncated = rollout(4, 6, 2)
    terminated[:], truncated[:] = False, False
    terminated[2, 0] = True
    next_values[2, 0] = np.nan  # the value of a terminal state is never used
    got = _run(framework, rewards, next_values, terminated, truncated, 0.95,
               np.float32 if framework == "jax" else torch.float32)
    assert np.isfinite(got).all()


def test_torch_does_not_mutate_inputs_and_gives_no_grad(rollout):
    data = rollout(5, 9, 3, flag_dtype=np.float32)
    tensors = [torch.tensor(x) for x in data]
    tensors[0].requires_grad_(True)
    copies = [t.detach().clone() for t in tensors]
    out = reference_torch.lambda_returns(*tensors, gamma=GAMMA, lmbda=0.95)
    assert not out.requires_grad
    for before, after in zip(copies, tensors):
        assert torch.equal(before, after)


def test_jax_does_not_mutate_numpy_inputs_and_gives_no_grad(rollout):
    data = rollout(6, 9, 3, flag_dtype=np.float32)
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
def test_bf16_inputs_return_float32(framework, rollout):
    rewards, next_values, terminated, truncated = rollout(7, 5, 2)
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
