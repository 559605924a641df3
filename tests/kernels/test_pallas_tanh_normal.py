"""Pallas tanh_normal (interpret mode on CPU) against the JAX reference and a float64 gold; CUDA lowering.

The bar (tests/kernels/conftest.py, flash-attention style): the kernel's max abs error against the
reference run in float64 is at most 2x the float32 reference's error on the same inputs and backend, plus
a floor of a float32 ulp of 1 + |gold| (FLOOR_ULPS); gradients are taken with random cotangents on
every output (action, log_prob, kl). On a GPU backend the kernels run compiled (`interpret` left at
None follows JAX's default backend).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reppo_fast.kernels import reference_jax as reference
from reppo_fast.kernels.pallas_ops import tanh_normal as tn

MODES = ("none", "analytic", "sampled")
NAMES = ("action", "log_prob", "kl", "grad_mean", "grad_log_std")
# With B = A = 1 the max is over one element, where the reference may round luckily; and XLA may contract
# a*b + c into an FMA inside the kernel but not in the reference, which moves a sum of O(1) terms by an
# ulp of the largest partial sum.
FLOOR_ULPS = 1.0


def _cotangents(seed, B, A):
    rng = np.random.default_rng(seed)
    # float32 values: the float64 gold sees the very cotangents the float32 runs do.
    shapes = ((B, A), (B,), (B,))
    return tuple(rng.normal(size=shape).astype(np.float32) for shape in shapes)


def _run(fn, args, cotangents, dtype):
    """{name: float64 numpy} of fn's outputs and of (d/dmean, d/dlog_std) for the given cotangents."""
    args = [jnp.asarray(a, dtype) for a in args]
    cotangents = [jnp.asarray(c, dtype) for c in cotangents]

    @jax.jit
    def values_and_grads(args, cotangents):
        out, vjp = jax.vjp(lambda m, s: tuple(fn(m, s, *args[2:])), *args[:2])
        grads = vjp(tuple(None if o is None else c for o, c in zip(out, cotangents)))
        return (*out, *grads)

    return {n: np.asarray(v, np.float64) for n, v in zip(NAMES, values_and_grads(args, cotangents))
            if v is not None}


def _results(args, cotangents):
    """(kernel, reference, float64 gold): {quantity: float64 numpy} each, from the same inputs."""
    with jax.enable_x64(True):
        gold = _run(reference.tanh_normal, args, cotangents, jnp.float64)
    ref = _run(reference.tanh_normal, args, cotangents, jnp.float32)
    ours = _run(tn.tanh_normal, args, cotangents, jnp.float32)
    assert ours.keys() == ref.keys() == gold.keys()
    for name in ours:
        assert ours[name].shape == ref[name].shape, name
    return ours, ref, gold


def _check(assert_within_bar, results):
    ours, ref, gold = results
    for name in ours:
        assert_within_bar(ours[name], ref[name], gold[name], floor_ulps=FLOOR_ULPS, name=name)


# Every value of B in {1, 37}, A in {1, 3, 21}, S in {1, 16}, and every (B, S) pair, in each KL mode.
CASES = [(m, B, A, S) for m in MODES for B, A, S in ((1, 1, 1), (37, 3, 16), (1, 21, 16), (37, 21, 1))]


@pytest.mark.parametrize("mode,B,A,S", CASES)
def test_values_and_gradients_match_float64(mode, B, A, S, assert_within_bar, tanh_normal_inputs,
                                            kl_mode_args):
    inputs = tanh_normal_inputs(B * 100 + A + S, B, A, S)
    _check(assert_within_bar, _results(kl_mode_args(inputs, mode), _cotangents(B + A, B, A)))


@pytest.mark.parametrize("mode", MODES)
def test_saturated_pre_tanh(mode, assert_within_bar, tanh_normal_inputs, kl_mode_args):
    # |u| > 10 of both signs (mean = +-15): tanh rounds to +-1 in float32, the naive 1 - tanh^2 is 0
    # and log(1 - tanh^2) ~ -2|u|.
    B, A, S = 8, 3, 4
    inputs = tanh_normal_inputs(3, B, A, S)
    inputs[0] = (np.where(np.arange(B)[:, None] % 2 == 0, 15.0, -15.0) + 0.1 * inputs[0]).astype(np.float32)
    assert (np.abs(inputs[0] + np.exp(inputs[1]) * inputs[2]) > 10.0).all()
    results = _results(kl_mode_args(inputs, mode), _cotangents(4, B, A))
    _check(assert_within_bar, results)
    assert np.abs(results[2]["log_prob"]).max() > 60.0  # the log-det term really is large


@pytest.mark.parametrize("mode", ["analytic", "sampled"])
def test_kl_between_close_policies(mode, assert_within_bar, tanh_normal_inputs, kl_mode_args):
    # The training regime (KL ~ kl_target = 0.1): the old policy is a small step from the new one.
    B, A, S = 37, 21, 16
    inputs = tanh_normal_inputs(14, B, A, S)
    rng = np.random.default_rng(15)
    inputs[3] = (inputs[0] + 0.05 * rng.normal(size=(B, A))).astype(np.float32)
    inputs[4] = (inputs[1] + 0.05 * rng.normal(size=(B, A))).astype(np.float32)
    _check(assert_within_bar, _results(kl_mode_args(inputs, mode), _cotangents(16, B, A)))


@pytest.mark.parametrize("mode", ["analytic", "sampled"])
def test_float64_matches_reference(mode, tanh_normal_inputs, kl_mode_args):
    B, A, S = 5, 3, 4
    args = kl_mode_args(tanh_normal_inputs(8, B, A, S, np.float64), mode)
    with jax.enable_x64(True):
        gold = _run(reference.tanh_normal, args, _cotangents(9, B, A), jnp.float64)
        ours = _run(tn.tanh_normal, args, _cotangents(9, B, A), jnp.float64)
    for name in gold:
        np.testing.assert_allclose(ours[name], gold[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_gradient_of_the_kl_alone(tanh_normal_inputs):
    # Unused outputs (action, log_prob) reach the backward kernel as instantiated zero cotangents.
    B, A, S = 7, 3, 4
    mean, log_std, *fixed = (jnp.asarray(x) for x in tanh_normal_inputs(1, B, A, S))
    weights = jnp.asarray(np.random.default_rng(2).normal(size=B), jnp.float32)

    def grads(fn):
        loss = lambda m, s: jnp.sum(fn(m, s, *fixed).kl * weights)  # noqa: E731
        return jax.jit(jax.grad(loss, argnums=(0, 1)))(mean, log_std)

    for got, expected in zip(grads(tn.tanh_normal), grads(reference.tanh_normal)):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)


def test_no_gradient_reaches_noise_or_the_old_policy(tanh_normal_inputs):
    B, A, S = 5, 3, 2
    inputs = [jnp.asarray(x) for x in tanh_normal_inputs(10, B, A, S)]
    assert tn.tanh_normal(*inputs[:3]).kl is None

    def total(*args):
        out = tn.tanh_normal(*args)
        return jnp.sum(out.action) + jnp.sum(out.log_prob) + jnp.sum(out.kl)

    grads = jax.jit(jax.grad(total, argnums=tuple(range(6))))(*inputs)
    assert np.abs(grads[0]).max() > 0 and np.abs(grads[1]).max() > 0
    assert all(not np.asarray(g).any() for g in grads[2:])


def test_bf16_leading_dims_and_broadcast_log_std():
    # bf16 computes in float32 (as the reference); [T, B, A] inputs and a state-independent log_std [A].
    rng = np.random.default_rng(17)
    mean, noise, old_mean, old_log_std = (rng.normal(size=(2, 5, 3)) for _ in range(4))
    log_std, old_noise = rng.uniform(-1.0, 0.5, size=3), rng.normal(size=(4, 2, 5, 3))
    args = [jnp.asarray(x, jnp.bfloat16) for x in (mean, log_std, noise, old_mean, old_log_std, old_noise)]
    ours, ref = jax.jit(tn.tanh_normal)(*args), jax.jit(reference.tanh_normal)(*args)
    for got, expected in zip(ours, ref):
        assert got.dtype == expected.dtype == jnp.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

    def grads(fn):
        return jax.jit(jax.grad(lambda m, s: jnp.sum(fn(m, s, *args[2:]).kl), argnums=(0, 1)))(*args[:2])

    for got, expected in zip(grads(tn.tanh_normal), grads(reference.tanh_normal)):
        assert got.dtype == jnp.bfloat16 and got.shape == expected.shape
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(expected, np.float32), rtol=1e-2)


@pytest.mark.parametrize("B,A", [(0, 3), (4, 0)])
def test_empty_shapes(B, A, tanh_normal_inputs):
    inputs = [jnp.asarray(x) for x in tanh_normal_inputs(12, B, A, 2)]
    for got, expected in zip(tn.tanh_normal(*inputs), reference.tanh_normal(*inputs)):
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def test_bad_arguments_raise(tanh_normal_inputs, assert_tanh_normal_argument_errors):
    assert_tanh_normal_argument_errors(tn.tanh_normal, *tanh_normal_inputs(12, 5, 3, 2))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("B,A,S", [(2048, 21, 16), (1, 1, 3)])
def test_lowers_for_cuda(mode, B, A, S, lower_for_cuda, tanh_normal_inputs, kl_mode_args):
    # interpret=False runs the Pallas Triton lowering (power-of-two blocks etc.) on this CPU-only jaxlib.
    inputs = kl_mode_args(tanh_normal_inputs(0, B, A, S), mode)
    args = [jax.ShapeDtypeStruct(x.shape, jnp.float32) for x in inputs]
    cotangents = (jax.ShapeDtypeStruct((B, A), jnp.float32), jax.ShapeDtypeStruct((B,), jnp.float32),
                  jax.ShapeDtypeStruct((B,), jnp.float32) if mode != "none" else None)

    def forward(*args):
        return tuple(tn.tanh_normal(*args, interpret=False))

    def vjp(args, cotangents):
        return jax.vjp(lambda m, s: forward(m, s, *args[2:]), *args[:2])[1](cotangents)

    for fn, avals in ((forward, args), (vjp, (args, cotangents))):
        text = lower_for_cuda(fn, *avals)
        assert "xla.gpu.triton" in text  # the Triton kernel call
