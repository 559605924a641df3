"""`dense`, the networks' one matmul (reppo_fast.precision): `bf16` is round_bf16(round_bf16(x) @
round_bf16(w)) + b with the products summed in float32, on both frameworks, against a float64 oracle that
rounds with its own bit arithmetic; its gradients follow the same rule; `float32` is float32 to within the
classical bound of a K-term float32 dot product."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reppo_fast.on_jax.dense import dense as jax_dense
from reppo_fast.on_torch.dense import dense as torch_dense
from reppo_fast.precision import PRECISIONS, matmul_precision, traced_precision

# Odd sizes, the networks' widths (151 bins, 512 hidden) and leading batch dims ([T, N, I] rollouts).
SHAPES = [((5,), 7, 3), ((37,), 151, 53), ((64,), 512, 17), ((3, 4), 1000, 9)]
U32 = 2.0 ** -24  # float32 unit roundoff


def round_bf16(a) -> np.ndarray:
    """float32 -> the nearest bfloat16 (ties to even), as float64: the low 16 bits of the float32 word
    rounded away (finite inputs)."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


def round_bf16_exact(v) -> np.ndarray:
    """float64 -> the nearest bfloat16 (8 significant bits, ties to even), with no float32 step between."""
    m, e = np.frexp(v)
    return np.ldexp(np.round(m * 256.0), e - 8)


def bf16_ulp(v) -> np.ndarray:
    return np.ldexp(1.0, np.frexp(v)[1] - 8)


def _inputs(seed, lead, fan_in, fan_out):
    rng = np.random.default_rng(seed)
    x = (3.0 * rng.standard_normal((*lead, fan_in))).astype(np.float32)
    w = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
    return x, w, rng.standard_normal(fan_out).astype(np.float32), rng.standard_normal((*lead, fan_out))


def _jax(precision, x, w, b, g):
    """dense's value and its gradients (x, w, b) under the upstream gradient g, on the JAX path."""
    def f(x, w, b):
        return jax_dense(x, w, b, precision)

    y, vjp = jax.vjp(jax.jit(f), *(jnp.asarray(a) for a in (x, w, b)))
    return [np.asarray(a, np.float64) for a in (y, *vjp(jnp.asarray(g, jnp.float32)))]


def _torch(precision, x, w, b, g):
    x, w, b = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = torch_dense(x, w, b, precision)
    y.backward(torch.tensor(g, dtype=torch.float32))
    return [a.detach().double().numpy() for a in (y, x.grad, w.grad, b.grad)]


def _bf16_oracle(x, w, b, g):
    """(y, dy/dx . g, dy/dw . g, dy/db . g) by the definition: every matmul (the backward ones too) of
    bf16-rounded operands, summed exactly in float64, then rounded once to bf16; the bias in float32."""
    xr, wr, gr = round_bf16(x), round_bf16(w), round_bf16(g)
    flat_x, flat_g = xr.reshape(-1, xr.shape[-1]), gr.reshape(-1, gr.shape[-1])
    y = round_bf16_exact(xr @ wr).astype(np.float32) + b  # the float32 bias add, rounded as float32
    return [y.astype(np.float64), round_bf16_exact(gr @ wr.T), round_bf16_exact(flat_x.T @ flat_g),
            np.asarray(g, np.float32).reshape(-1, g.shape[-1]).sum(0)]


@pytest.mark.parametrize("framework", ["jax", "torch"])
@pytest.mark.parametrize("lead, fan_in, fan_out", SHAPES)
def test_bf16_dense_and_its_gradients_are_the_rounded_exact_sums(framework, lead, fan_in, fan_out):
    """Within one bf16 ulp of the correctly rounded exact sum (the float32 sum may round a near-tie the
    other way), and equal to it almost everywhere (an unrounded float32 output would not be); b's gradient
    is a float32 sum."""
    x, w, b, g = _inputs(fan_in, lead, fan_in, fan_out)
    got = (_jax if framework == "jax" else _torch)("bf16", x, w, b, g)
    want = _bf16_oracle(x, w, b, g)
    for name, got_a, want_a in zip(("y", "dx", "dw"), got, want):
        exact = want_a - b if name == "y" else want_a
        ulp = bf16_ulp(exact) + (np.abs(want_a) * U32 if name == "y" else 0.0)  # + the float32 bias add
        assert got_a.shape == want_a.shape, name
        assert np.all(np.abs(got_a - want_a) <= ulp), name
        assert np.mean(got_a == want_a) >= 0.99, name
    np.testing.assert_allclose(got[3], want[3], rtol=1e-5, atol=1e-5 * np.abs(g).max())


@pytest.mark.parametrize("lead, fan_in, fan_out", SHAPES)
def test_bf16_dense_agrees_across_frameworks_within_one_ulp(lead, fan_in, fan_out):
    """The same numbers from both frameworks (bit for bit on the CPU of 2026-12; one bf16 ulp allowed for
    a float32 sum taken in another order)."""
    x, w, b, g = _inputs(1 + fan_in, lead, fan_in, fan_out)
    for name, j, t in zip(("y", "dx", "dw"), _jax("bf16", x, w, b, g), _torch("bf16", x, w, b, g)):
        ref = j - b if name == "y" else j
        assert np.all(np.abs(j - t) <= bf16_ulp(ref) + np.abs(j) * U32), name


@pytest.mark.usefixtures("float32_matmuls")
@pytest.mark.parametrize("framework", ["jax", "torch"])
@pytest.mark.parametrize("lead, fan_in, fan_out", SHAPES)
def test_float32_dense_is_float32(framework, lead, fan_in, fan_out):
    """|y - y64| <= (K + 1) u (|x| |w| + |b|): the classical bound on a float32 dot of K terms plus a bias
    (u = 2^-24), which a bf16 rounding (u = 2^-9) breaks."""
    x, w, b, g = _inputs(2 + fan_in, lead, fan_in, fan_out)
    y = (_jax if framework == "jax" else _torch)("float32", x, w, b, g)[0]
    x64, w64, b64 = (np.asarray(a, np.float64) for a in (x, w, b))
    bound = (fan_in + 1) * U32 * (np.abs(x64) @ np.abs(w64) + np.abs(b64))
    assert np.all(np.abs(y - (x64 @ w64 + b64)) <= bound)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_traced_precision_is_the_context_s(precision):
    assert traced_precision() == "tf32"  # JAX's default, outside any context
    with matmul_precision(precision):
        assert traced_precision() == precision
