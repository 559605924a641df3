"""Pallas HL-Gauss loss, decode and histogram (interpret mode on CPU) against the JAX reference and a
float64 gold: values, gradients via jax.vjp with random cotangents, odd shapes, extreme inputs, float64,
bf16, and cross-lowering for CUDA (Triton) of every public function, forward and vjp.

The bar (tests/kernels/conftest.py, flash-attention style): the kernel's max abs error against the
reference run in float64 on the same (rounded) inputs is at most 2x the float32 reference's error on the
same backend, plus an eighth of a float32 ulp of 1 + |gold|. On a GPU backend the kernels run
compiled (interpret defaults to False there), the reference and the gold on the GPU too.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from reppo_fast.kernels import reference_jax as ref
from reppo_fast.kernels.pallas_ops import hl_gauss_ce as hg

V_MIN, V_MAX = -15.0, 15.0
SUPPORT = {"v_min": V_MIN, "v_max": V_MAX}
FLOOR_ULPS = 0.125


def _inputs(seed, batch, num_bins, scale=1.0, dtype=np.float32):
    """float64 copies of dtype-representable logits [B, K] ~ N(0, scale^2), targets [B] (inside the
    support, on its bounds, far outside) and upstream cotangents [B]."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(batch, num_bins)) * scale
    special_targets = [0.0, V_MIN, V_MAX, V_MIN - 40.0, V_MAX + 3.0, 0.37]
    targets = np.concatenate([special_targets, rng.uniform(-17.0, 17.0, size=batch)])[:batch]
    upstream = rng.normal(size=batch)
    return [np.asarray(jnp.asarray(a, dtype).astype(jnp.float32), np.float64)
            for a in (logits, targets, upstream)]


def _ce(module, logits, targets, upstream, dtype):
    """(loss, d loss/d logits . upstream) as float64 numpy, computed from inputs cast to dtype."""
    loss, vjp = jax.vjp(lambda x: module.hl_gauss_ce(x, jnp.asarray(targets, dtype), **SUPPORT),
                        jnp.asarray(logits, dtype))
    (grad,) = vjp(jnp.asarray(upstream, loss.dtype))
    return loss, grad


def _decode(module, logits, upstream, dtype):
    q, vjp = jax.vjp(lambda x: module.hl_gauss_decode(x, **SUPPORT), jnp.asarray(logits, dtype))
    (grad,) = vjp(jnp.asarray(upstream, q.dtype))
    return q, grad


def _gold(fn, *args):
    """The reference in float64 on the same inputs (x64 scoped to this call)."""
    with jax.enable_x64(True):
        return [np.asarray(a, np.float64) for a in fn(ref, *args, jnp.float64)]


def test_erf_against_scipy():
    # The in-kernel erf (no Triton lowering for lax.erf): float32 at least as good as XLA's own erf.
    x = np.concatenate([np.linspace(-7.0, 7.0, 200_001), np.random.default_rng(0).normal(size=50_000) * 3])
    x32 = x.astype(np.float32)
    gold32 = special.erf(x32.astype(np.float64))
    err = np.abs(np.asarray(jax.jit(hg._erf)(jnp.asarray(x32)), np.float64) - gold32).max()
    xla_err = np.abs(np.asarray(jax.scipy.special.erf(jnp.asarray(x32)), np.float64) - gold32).max()
    assert err <= min(xla_err, 1.5 * np.finfo(np.float32).eps), (err, xla_err)
    with jax.enable_x64(True):
        err64 = np.abs(np.asarray(jax.jit(hg._erf)(jnp.asarray(x))) - special.erf(x)).max()
    assert err64 <= 4 * np.finfo(np.float64).eps, err64


@pytest.mark.parametrize("batch,num_bins,scale,dtype", [
    (7, 151, 1.0, jnp.float32), (37, 151, 30.0, jnp.float32), (1, 151, 3.0, jnp.float32),
    (9, 7, 1.0, jnp.float32), (5, 37, 30.0, jnp.float32), (7, 151, 1e4, jnp.float32),
    (7, 151, 3.0, jnp.bfloat16)])
def test_ce_loss_and_gradient_against_float64_gold(batch, num_bins, scale, dtype, assert_within_bar):
    logits, targets, upstream = _inputs(batch * num_bins, batch, num_bins, scale, dtype)
    gold = _gold(_ce, logits, targets, upstream)
    reference = _ce(ref, logits, targets, upstream, dtype)
    ours = _ce(hg, logits, targets, upstream, dtype)
    assert ours[0].dtype == jnp.float32 and ours[1].dtype == dtype and ours[1].shape == (batch, num_bins)
    for name, o, r, g in zip(("loss", "grad"), ours, reference, gold):
        assert_within_bar(o, r, g, floor_ulps=FLOOR_ULPS, name=name)


@pytest.mark.parametrize("batch,num_bins,scale", [(7, 151, 1.0), (37, 151, 10.0), (1, 37, 3.0), (9, 7, 1e3)])
def test_decode_and_gradient_against_float64_gold(batch, num_bins, scale, assert_within_bar):
    logits, _, upstream = _inputs(batch + num_bins, batch, num_bins, scale)
    gold = _gold(_decode, logits, upstream)
    reference = _decode(ref, logits, upstream, jnp.float32)
    ours = _decode(hg, logits, upstream, jnp.float32)
    assert ours[0].dtype == jnp.float32 and ours[1].dtype == jnp.float32
    for name, o, r, g in zip(("q", "grad"), ours, reference, gold):
        assert_within_bar(o, r, g, floor_ulps=FLOOR_ULPS, name=name)


@pytest.mark.parametrize("batch,num_bins,v_min,v_max,sigma_ratio", [
    (37, 151, V_MIN, V_MAX, 0.75), (5, 151, 0.0, 150.0, 0.75), (1, 7, V_MIN, V_MAX, 0.5),
    (7, 2, -1.0, 1.0, 2.0)])
def test_hist_against_float64_gold(batch, num_bins, v_min, v_max, sigma_ratio, assert_within_bar):
    _, targets, _ = _inputs(batch + num_bins, batch, 1)
    # The special values scaled to this support, rounded to float32: the gold sees the kernel's inputs.
    targets = (targets * (v_max - v_min) / (V_MAX - V_MIN)).astype(np.float32).astype(np.float64)
    kw = {"num_bins": num_bins, "v_min": v_min, "v_max": v_max, "sigma_ratio": sigma_ratio}
    ours = hg.hl_gauss_hist(jnp.asarray(targets, jnp.float32), **kw)
    assert ours.shape == (batch, num_bins) and ours.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(ours).sum(-1), 1.0, rtol=0, atol=1e-6)
    with jax.enable_x64(True):
        gold = np.asarray(ref.hl_gauss_hist(jnp.asarray(targets), **kw))
    reference = ref.hl_gauss_hist(jnp.asarray(targets, jnp.float32), **kw)
    assert_within_bar(ours, reference, gold, floor_ulps=FLOOR_ULPS, name="hist")


def test_float64_follows_the_input_and_matches_the_reference():
    logits, targets, upstream = _inputs(5, 7, 151, 3.0)
    with jax.enable_x64(True):
        ours, gold = ([*_ce(m, logits, targets, upstream, jnp.float64),
                       *_decode(m, logits, upstream, jnp.float64)] for m in (hg, ref))
        hist = hg.hl_gauss_hist(jnp.asarray(targets), num_bins=151, **SUPPORT)
        hist_gold = ref.hl_gauss_hist(jnp.asarray(targets), num_bins=151, **SUPPORT)
        for o, g in zip(ours + [hist], gold + [hist_gold]):
            assert o.dtype == jnp.float64
            # The loss is ~10: its last bits differ; the erfs (Cephes vs XLA) agree to ~1e-15.
            np.testing.assert_allclose(np.asarray(o), np.asarray(g), rtol=0, atol=1e-12)


def test_extreme_inputs():
    # -inf logits where the target has no mass (legal: finite loss, exactly zero gradient there), targets
    # far outside the support (clipped), one-hot softmaxes from logits of 1e4. 7 rows: the shapes of
    # the tests above, whose compiled kernels are reused.
    logits, targets, upstream = _inputs(1, 7, 151)
    logits[:2, 100:] = -np.inf
    logits[2] *= 1e4
    targets[:3] = [V_MIN, V_MIN - 1e6, V_MAX + 1e6]
    loss, grad = _ce(hg, logits, targets, upstream, jnp.float32)
    gold_loss, gold_grad = _gold(_ce, logits, targets, upstream)
    assert np.isfinite(loss).all() and np.isfinite(grad).all() and not np.asarray(grad)[:2, 100:].any()
    np.testing.assert_allclose(loss, gold_loss, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(grad, gold_grad, rtol=0, atol=1e-6)
    q, grad_q = _decode(hg, logits, upstream, jnp.float32)
    gold_q, gold_grad_q = _gold(_decode, logits, upstream)
    np.testing.assert_allclose(q, gold_q, rtol=0, atol=1e-5)
    np.testing.assert_allclose(grad_q, gold_grad_q, rtol=0, atol=1e-5)
    assert np.asarray(grad_q)[2, np.argmax(logits[2])] == 0  # one-hot: c - q is exactly 0 at the hot bin
    # A NaN target behaves as in the reference: its histogram is NaN, the select zeroes the loss, the
    # gradient row is NaN; other rows are untouched.
    finite = np.nan_to_num(logits, neginf=-30.0)
    targets[0] = np.nan
    for module in (hg, ref):
        loss, grad = _ce(module, finite, targets, upstream, jnp.float32)
        assert loss[0] == 0 and np.isnan(grad[0]).all() and np.isfinite(grad[1:]).all()


def test_shapes_dtypes_jit_and_errors(assert_hl_gauss_argument_errors):
    logits, targets, _ = _inputs(4, 6, 151)
    x, y = jnp.asarray(logits, jnp.float32), jnp.asarray(targets, jnp.float32)
    flat = hg.hl_gauss_ce(x, y, **SUPPORT)
    nested = hg.hl_gauss_ce(x.reshape(2, 3, 151), y.reshape(2, 3), **SUPPORT)
    assert nested.shape == (2, 3) and np.array_equal(nested.reshape(6), flat)
    assert hg.hl_gauss_decode(x.reshape(2, 3, 151), **SUPPORT).shape == (2, 3)
    assert hg.hl_gauss_hist(y.reshape(2, 3), num_bins=151, **SUPPORT).shape == (2, 3, 151)
    np.testing.assert_array_equal(jax.jit(lambda a, b: hg.hl_gauss_ce(a, b, **SUPPORT))(x, y), flat)
    assert hg.hl_gauss_ce(x[:0], y[:0], **SUPPORT).shape == (0,)
    assert hg.hl_gauss_hist(y[:0], num_bins=7, **SUPPORT).shape == (0, 7)
    # Targets get no gradient; integer targets are fine.
    grad_y = jax.grad(lambda t: hg.hl_gauss_ce(x, t, **SUPPORT).sum())(y)
    assert not np.asarray(grad_y).any()
    assert hg.hl_gauss_ce(x, jnp.zeros(6, jnp.int32), **SUPPORT).dtype == jnp.float32
    assert_hl_gauss_argument_errors(hg, x, y, **SUPPORT)


@pytest.mark.parametrize("batch,num_bins,dtype", [(37, 151, jnp.float32), (1, 7, jnp.float32),
                                                  (5, 151, jnp.float64)])
def test_every_function_lowers_for_cuda(batch, num_bins, dtype, lower_for_cuda):
    # interpret=False on this CPU-only jaxlib: the Pallas -> Triton IR lowering runs in full (block
    # shapes, every primitive in the kernels); PTX compilation needs a GPU.
    gpu = {"interpret": False, **SUPPORT}

    def ce_vjp(x, y, g):  # the primal output too: otherwise the forward would be dead code
        loss, vjp = jax.vjp(lambda a: hg.hl_gauss_ce(a, y, **gpu), x)
        return loss, vjp(g)

    def decode_vjp(x, g):
        q, vjp = jax.vjp(lambda a: hg.hl_gauss_decode(a, **gpu), x)
        return q, vjp(g)

    cases = [  # (function, avals, Triton kernels expected)
        (lambda x, y: hg.hl_gauss_ce(x, y, **gpu), ("logits", "rows"), 1),
        (ce_vjp, ("logits", "rows", "rows"), 1),  # the forward writes the gradient; backward: one multiply
        (lambda x: hg.hl_gauss_decode(x, **gpu), ("logits",), 1),
        (decode_vjp, ("logits", "rows"), 2),
        (lambda y: hg.hl_gauss_hist(y, num_bins=num_bins, **gpu), ("rows",), 1),
    ]
    shapes = {"logits": (batch, num_bins), "rows": (batch,)}
    with jax.enable_x64(dtype == jnp.float64):
        for fn, names, kernels in cases:
            text = lower_for_cuda(fn, *(jax.ShapeDtypeStruct(shapes[n], dtype) for n in names))
            assert text.count("__gpu$xla.gpu.triton") == kernels, text[:2000]
