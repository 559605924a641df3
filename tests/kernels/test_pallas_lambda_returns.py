"""Pallas lambda-returns against the JAX reference, a float64 gold and the brute-force n-step oracle.

On CPU the kernel runs in Pallas interpret mode (the same kernel body as plain JAX). The GPU path is
checked without a GPU: every public entry point lowers for CUDA (the Triton custom call), and, where
the triton package is installed, the Triton IR Pallas emits compiles to PTX for sm_90.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reppo_fast.kernels import reference_jax
from reppo_fast.kernels.pallas_ops import lambda_returns as pallas_module

GAMMA = 0.97
TRITON_CALL = "__gpu$xla.gpu.triton"


def _cast(data, dtype, flag_dtype=bool):
    rewards, next_values, terminated, truncated = data
    return (jnp.asarray(rewards, dtype), jnp.asarray(next_values, dtype),
            np.asarray(terminated, flag_dtype), np.asarray(truncated, flag_dtype))


def _kernel(args, gamma=GAMMA, lmbda=0.95):
    return pallas_module.lambda_returns(*args, gamma=gamma, lmbda=lmbda)


def _reference(args, gamma=GAMMA, lmbda=0.95):
    return reference_jax.lambda_returns(*args, gamma=gamma, lmbda=lmbda)


def _gold(args, gamma=GAMMA, lmbda=0.95):
    """The reference in float64 on the very inputs the kernel saw (bf16-rounded ones included)."""
    rewards, next_values, terminated, truncated = (np.asarray(x) for x in args)
    with jax.enable_x64(True):
        return np.asarray(_reference((rewards.astype(np.float64), next_values.astype(np.float64),
                                      terminated, truncated), gamma, lmbda))


def _assert_within_twice_the_reference_error(assert_within_bar, args, gamma=GAMMA, lmbda=0.95):
    """The bar of tests/kernels/conftest.py against the plain float32 reference on the same backend; the
    floor, a few ulps of |G|: the kernel and the reference each round T dependent steps their own way."""
    got, gold = _kernel(args, gamma, lmbda), _gold(args, gamma, lmbda)
    assert got.dtype == jnp.float32 and got.shape == gold.shape
    assert_within_bar(got, _reference(args, gamma, lmbda), gold, floor_ulps=4)


FLAG_SETS = ["random", "all_terminated", "all_truncated", "both"]


@pytest.mark.parametrize("lmbda", [0.0, 0.95, 1.0])
def test_float64_matches_n_step_oracle(lmbda, oracle_rollout, oracle_lambda_returns):
    shape, data = oracle_rollout
    with jax.enable_x64(True):
        got = _kernel(_cast(data, jnp.float64), lmbda=lmbda)
        assert got.dtype == jnp.float64 and got.shape == shape
        # float64 end to end: only reassociation error (~T ulp of |G|) remains.
        np.testing.assert_allclose(np.asarray(got), oracle_lambda_returns(*data, GAMMA, lmbda),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lmbda", [0.0, 0.95, 1.0])
@pytest.mark.parametrize("flags", FLAG_SETS)
@pytest.mark.parametrize("flag_dtype", [bool, np.float32])
def test_float32_within_twice_the_reference_error(lmbda, flags, flag_dtype, assert_within_bar, rollout):
    args = _cast(rollout(FLAG_SETS.index(flags), 37, 7, flags=flags), jnp.float32, flag_dtype)
    _assert_within_twice_the_reference_error(assert_within_bar, args, lmbda=lmbda)


def test_extreme_inputs(extreme_rollout, assert_within_bar):
    gamma, lmbda, data = extreme_rollout
    args = _cast(data, jnp.float32)
    assert np.isfinite(np.asarray(_kernel(args, gamma, lmbda))).all()
    _assert_within_twice_the_reference_error(assert_within_bar, args, gamma, lmbda)


def test_bf16_inputs_return_float32_within_twice_the_reference_error(assert_within_bar, rollout):
    args = _cast(rollout(7, 37, 7), jnp.bfloat16)
    assert _reference(args).dtype == jnp.float32
    _assert_within_twice_the_reference_error(assert_within_bar, args)


@pytest.mark.parametrize("shape", [(4, 1000), (3, 129)])
def test_many_envs_several_programs_last_one_padded(shape, assert_within_bar, rollout):
    """N = 1000 and 129: blocks of 128 envs, the last one padded with zeros and sliced off."""
    args = _cast(rollout(8, *shape, flags="both"), jnp.float32)
    _assert_within_twice_the_reference_error(assert_within_bar, args)


def test_float_flags_nonzero_means_set(rollout):
    rewards, next_values, terminated, truncated = _cast(rollout(14, 9, 5, flags="both"), jnp.float32)
    expected = _kernel((rewards, next_values, terminated, truncated))
    scaled = [np.where(x, np.float32(-2.5), np.float32(0)) for x in (terminated, truncated)]
    np.testing.assert_array_equal(_kernel((rewards, next_values, *scaled)), expected)
    np.testing.assert_array_equal(_kernel((rewards, next_values, terminated.astype(np.int32), truncated)),
                                  expected)


def test_any_leading_t_shape_like_the_reference(rollout):
    rewards, next_values, terminated, truncated = _cast(rollout(11, 6, 6), jnp.float32)
    for shape in [(6,), (6, 2, 3), (6, 0)]:
        args = [x[:, 0] if len(shape) == 1 else x[:, :0] if 0 in shape else x.reshape(shape)
                for x in (rewards, next_values, terminated, truncated)]
        got = _kernel(args)
        assert got.shape == shape and got.dtype == jnp.float32
        np.testing.assert_allclose(got, _reference(args), rtol=1e-6, atol=1e-6)


def test_nan_in_unused_values_does_not_leak(rollout):
    rewards, next_values, terminated, truncated = rollout(4, 6, 2)
    terminated[:], truncated[:] = False, False
    terminated[2, 0] = True
    next_values[2, 0] = np.nan  # the value of a terminal state is never used
    truncated[3, 1] = True
    rewards[4, 1] = np.nan  # G_4 belongs to the next episode: G_3 bootstraps from V_4 alone
    args = _cast((rewards, next_values, terminated, truncated), jnp.float32)
    got = np.asarray(_kernel(args))
    assert np.isfinite(got[:4]).all() and np.isnan(got[4:, 1]).any()
    np.testing.assert_allclose(got, _reference(args), rtol=1e-6, atol=1e-6, equal_nan=True)


def test_traced_gamma_and_lmbda_under_jit(rollout):
    """gamma/lmbda as jit arguments (no recompilation per value) give the Python-float results."""
    args = _cast(rollout(15, 9, 5, flags="both"), jnp.float32)
    jitted = jax.jit(lambda gamma, lmbda, *xs: pallas_module.lambda_returns(*xs, gamma=gamma, lmbda=lmbda))
    for lmbda in (0.0, 0.9):
        got = jitted(jnp.float32(GAMMA), jnp.float32(lmbda), *args)
        np.testing.assert_allclose(got, _kernel(args, lmbda=lmbda), rtol=1e-6, atol=1e-6)


def test_vmap_over_a_batch_of_rollouts(rollout):
    rewards, next_values, terminated, truncated = _cast(rollout(16, 2 * 7, 3), jnp.float32)
    batch = [x.reshape(2, 7, 3) for x in (rewards, next_values, terminated, truncated)]
    got = jax.vmap(lambda *xs: _kernel(xs))(*batch)
    expected = jnp.stack([_reference([x[i] for x in batch]) for i in range(2)])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_inputs_not_mutated_and_no_gradient(rollout):
    data = tuple(x.astype(np.float32) for x in rollout(5, 9, 3))
    copies = [x.copy() for x in data]
    returns, vjp = jax.vjp(lambda r, v: _kernel((r, v, *data[2:])), data[0], data[1])
    for before, after in zip(copies, data):
        np.testing.assert_array_equal(before, after)
    cotangent = np.random.default_rng(0).normal(size=returns.shape).astype(np.float32)
    for grad in vjp(cotangent):
        assert grad.shape == returns.shape and not np.asarray(grad).any()
    assert not np.asarray(jax.grad(lambda r: _kernel((r, *data[1:])).sum())(data[0])).any()


def test_shape_errors_like_the_reference(rollout, assert_lambda_returns_shape_errors):
    assert_lambda_returns_shape_errors(_kernel, *_cast(rollout(6, 3, 2), jnp.float32))


def _avals(shape, values=jnp.float32, flags=jnp.bool_):
    return [jax.ShapeDtypeStruct(shape, values)] * 2 + [jax.ShapeDtypeStruct(shape, flags)] * 2


@pytest.mark.parametrize("shape, values, flags", [
    ((128, 1024), jnp.float32, jnp.bool_),  # the DMC rollout: 8 programs of 128 envs
    ((37, 5), jnp.bfloat16, jnp.float32),  # odd shape (N padded to 8), bf16 widened in the kernel
    ((1, 1), jnp.float32, jnp.int32),
    ((16, 2, 3), jnp.float32, jnp.bool_),
])
def test_lowers_for_cuda(shape, values, flags, lower_for_cuda):
    def forward(*xs):
        return pallas_module.lambda_returns(*xs, gamma=GAMMA, lmbda=0.95, interpret=False)

    assert TRITON_CALL in lower_for_cuda(forward, *_avals(shape, values, flags))


def test_float64_and_traced_scalars_lower_for_cuda(lower_for_cuda):
    def forward(gamma, lmbda, *xs):
        return pallas_module.lambda_returns(*xs, gamma=gamma, lmbda=lmbda, interpret=False)

    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    assert TRITON_CALL in lower_for_cuda(forward, scalar, scalar, *_avals((37, 5)))
    with jax.enable_x64(True):
        text = lower_for_cuda(lambda *xs: forward(GAMMA, 0.95, *xs), *_avals((37, 5), jnp.float64))
        assert TRITON_CALL in text and "tensor<37x5xf64>" in text


def test_vjp_lowers_for_cuda(lower_for_cuda):
    """No gradient flows, but a loss that differentiates through the returns must still lower."""
    def vjp(rewards, next_values, terminated, truncated, cotangent):
        def forward(r, v):
            return pallas_module.lambda_returns(r, v, terminated, truncated, gamma=GAMMA, lmbda=0.95,
                                                interpret=False)

        returns, pullback = jax.vjp(forward, rewards, next_values)
        return returns, pullback(cotangent)

    assert TRITON_CALL in lower_for_cuda(vjp, *_avals((37, 5)), jax.ShapeDtypeStruct((37, 5), jnp.float32))


def _triton_ir(debug_dump: str) -> str:
    """The textual Triton module from pallas_call(debug=True) output, debug locations stripped."""
    start = debug_dump.find("module @")
    if start < 0:
        pytest.skip("this jax prints no Triton module under pallas_call(debug=True)")
    lines = [line for line in debug_dump[start:].splitlines() if not line.startswith("#loc")]
    text = "\n".join(re.sub(r' "[^"]*"\(#loc\d*\)| loc\(#loc\d*\)| \[unknown\]', "", line) for line in lines)
    return text[: text.rfind("}") + 1]


def test_triton_ir_compiles_to_ptx_for_sm90(monkeypatch, capsys, tmp_path, lower_for_cuda):
    """Past the lowering: the installed Triton compiles the module Pallas emits (power-of-two loads,
    bool flags as bytes) to PTX. Shape (3, 96) is used by no other test, so the kernel is traced anew.
    In this process, unlike the AOT checks of the Triton kernels (conftest's compile_aot_specs): it
    starts from Triton IR text, so it never runs the Python front end that interpreted kernels leave
    patched."""
    triton = pytest.importorskip("triton", reason="compiling the Triton IR needs the triton package")
    from triton.backends.compiler import GPUTarget

    pallas_call = pallas_module.pl.pallas_call
    monkeypatch.setattr(pallas_module.pl, "pallas_call", lambda *a, **k: pallas_call(*a, **k, debug=True))

    def forward(*xs):
        return pallas_module.lambda_returns(*xs, gamma=GAMMA, lmbda=0.95, interpret=False)

    lower_for_cuda(forward, *_avals((3, 96)))
    path = tmp_path / "lambda_returns.ttir"
    path.write_text(_triton_ir(capsys.readouterr().out))
    compiled = triton.compile(str(path), target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
    ptx = compiled.asm["ptx"]
    assert "ld.global.b8" in ptx and "st.global" in ptx  # one-byte flags, one store per row
