"""Triton HL-Gauss loss, decode and histogram against the float64 reference: values, gradients with random
upstream gradients, odd shapes, extreme inputs, strides, bf16, float64, torch.compile and AOT compilation.

The bar (tests/kernels/conftest.py, flash-attention style): the kernel's max abs error against the
reference run in float64 is at most 2x the plain PyTorch reference's error in the same input dtype on
the same device, plus a floor of an eighth of a float32 ulp of 1 + |gold|.
"""

import pytest
import torch

triton = pytest.importorskip("triton", reason="the Triton kernels need the triton package")

from reppo_fast.kernels import reference_torch  # noqa: E402
from reppo_fast.kernels.triton_ops import hl_gauss_ce as hg  # noqa: E402
from reppo_fast.process_env import triton_device  # noqa: E402

DEVICE = triton_device()
FLOOR_ULPS = 0.125
V_MIN, V_MAX = -15.0, 15.0
SUPPORT = {"v_min": V_MIN, "v_max": V_MAX}


def _inputs(seed, batch, num_bins, scale=1.0, dtype=torch.float32):
    """logits [B, K] ~ N(0, scale^2), targets [B] (inside the support, on its bounds, far outside) and
    upstream gradients [B]."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, num_bins, generator=g, dtype=torch.float64) * scale
    special = torch.tensor([0.0, V_MIN, V_MAX, V_MIN - 40.0, V_MAX + 3.0, 0.37], dtype=torch.float64)
    targets = torch.cat([special, torch.rand(batch, generator=g, dtype=torch.float64) * 34 - 17])[:batch]
    upstream = torch.randn(batch, generator=g, dtype=torch.float64)
    return logits.to(DEVICE, dtype), targets.to(DEVICE, dtype), upstream.to(DEVICE)


def _ce(fn, logits, targets, upstream, cast=None, **kw):
    x = (logits if cast is None else logits.to(cast)).detach().clone().requires_grad_()
    loss = fn(x, targets if cast is None else targets.to(cast), **SUPPORT, **kw)
    (grad,) = torch.autograd.grad(loss, x, upstream.to(loss.dtype))
    return loss.detach(), grad


def _decode(fn, logits, upstream, cast=None):
    x = (logits if cast is None else logits.to(cast)).detach().clone().requires_grad_()
    q = fn(x, **SUPPORT)
    (grad,) = torch.autograd.grad(q, x, upstream.to(q.dtype))
    return q.detach(), grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch,num_bins,scale", [(7, 151, 1.0), (37, 151, 30.0), (1, 151, 3.0), (37, 7, 1.0),
                                                  (7, 37, 30.0), (7, 151, 1e4)])
def test_ce_loss_and_gradient_against_float64_gold(dtype, batch, num_bins, scale, assert_within_bar):
    logits, targets, upstream = _inputs(batch * num_bins, batch, num_bins, scale, dtype)
    gold = _ce(reference_torch.hl_gauss_ce, logits, targets, upstream, cast=torch.float64)
    ref = _ce(reference_torch.hl_gauss_ce, logits, targets, upstream)
    ours = _ce(hg.hl_gauss_ce, logits, targets, upstream)
    assert ours[0].dtype == torch.float32 and ours[1].dtype == dtype
    for name, o, r, g in zip(("loss", "grad"), ours, ref, gold):
        assert_within_bar(o, r, g, floor_ulps=FLOOR_ULPS, name=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch,num_bins,scale", [(7, 151, 1.0), (37, 151, 10.0), (1, 37, 3.0), (37, 7, 1e3)])
def test_decode_and_gradient_against_float64_gold(dtype, batch, num_bins, scale, assert_within_bar):
    logits, _, upstream = _inputs(batch + num_bins, batch, num_bins, scale, dtype)
    gold = _decode(reference_torch.hl_gauss_decode, logits, upstream, cast=torch.float64)
    ref = _decode(reference_torch.hl_gauss_decode, logits, upstream)
    ours = _decode(hg.hl_gauss_decode, logits, upstream)
    assert ours[0].dtype == torch.float32 and ours[1].dtype == dtype
    for name, o, r, g in zip(("q", "grad"), ours, ref, gold):
        assert_within_bar(o, r, g, floor_ulps=FLOOR_ULPS, name=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch,num_bins,v_min,v_max,sigma_ratio", [
    (37, 151, V_MIN, V_MAX, 0.75), (7, 151, 0.0, 15.0, 0.75), (1, 7, V_MIN, V_MAX, 0.5),
    (7, 2, -1.0, 1.0, 2.0)])
def test_hist_against_float64_gold(dtype, batch, num_bins, v_min, v_max, sigma_ratio,
                                   assert_within_bar):
    _, targets, _ = _inputs(batch + num_bins, batch, 2, dtype=dtype)
    kw = {"num_bins": num_bins, "v_min": v_min, "v_max": v_max, "sigma_ratio": sigma_ratio}
    ours = hg.hl_gauss_hist(targets, **kw)
    assert ours.shape == (batch, num_bins) and ours.dtype == torch.float32
    torch.testing.assert_close(ours.sum(-1), torch.ones_like(ours[:, 0]), rtol=0, atol=1e-6)
    gold = reference_torch.hl_gauss_hist(targets.double(), **kw)
    assert_within_bar(ours, reference_torch.hl_gauss_hist(targets, **kw), gold, floor_ulps=FLOOR_ULPS,
                      name="hist")


def test_float64_follows_the_input_and_matches_the_reference():
    logits, targets, upstream = _inputs(5, 7, 151, 3.0, torch.float64)
    for ours, gold in zip(_ce(hg.hl_gauss_ce, logits, targets, upstream) +
                          _decode(hg.hl_gauss_decode, logits, upstream),
                          _ce(reference_torch.hl_gauss_ce, logits, targets, upstream) +
                          _decode(reference_torch.hl_gauss_decode, logits, upstream)):
        assert ours.dtype == torch.float64
        torch.testing.assert_close(ours, gold, rtol=0, atol=1e-12)
    kw = {"num_bins": 151, **SUPPORT}
    torch.testing.assert_close(hg.hl_gauss_hist(targets, **kw), reference_torch.hl_gauss_hist(targets, **kw),
                               rtol=0, atol=1e-13)


def test_strided_inputs_give_the_same_bits():
    # Transposed logits (column stride B), every other target, an expanded (stride 0) upstream gradient.
    logits, targets, _ = _inputs(3, 37, 151, 2.0)
    logits_t = logits.t().contiguous().t()
    targets_s = torch.stack([targets, -targets], dim=1)[:, 0]
    assert logits_t.stride() == (1, 37) and targets_s.stride() == (2,)
    upstream = torch.ones((), device=DEVICE).expand(37)
    strided = _ce(hg.hl_gauss_ce, logits_t, targets_s, upstream)
    torch.testing.assert_close(strided, _ce(hg.hl_gauss_ce, logits, targets, upstream), rtol=0, atol=0)
    strided = _decode(hg.hl_gauss_decode, logits_t, upstream)
    torch.testing.assert_close(strided, _decode(hg.hl_gauss_decode, logits, upstream), rtol=0, atol=0)
    kw = {"num_bins": 151, **SUPPORT}
    assert torch.equal(hg.hl_gauss_hist(targets_s, **kw), hg.hl_gauss_hist(targets, **kw))


def test_extreme_inputs():
    # -inf logits where the target has no mass (legal: finite loss, exactly zero gradient there), targets
    # far outside the support (clipped), one-hot softmaxes from logits of 1e4, and a 1e4-sized decode.
    logits = torch.randn(3, 151, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    logits[:2, 100:] = -torch.inf
    logits[2] *= 1e4
    logits = logits.to(DEVICE, torch.float32)
    targets = torch.tensor([V_MIN, V_MIN - 1e6, V_MAX + 1e6], device=DEVICE)
    upstream = torch.tensor([1.0, -2.0, 0.5], device=DEVICE)
    loss, grad = _ce(hg.hl_gauss_ce, logits, targets, upstream)
    gold_loss, gold_grad = _ce(reference_torch.hl_gauss_ce, logits, targets, upstream, cast=torch.float64)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all() and not grad[:2, 100:].any()
    torch.testing.assert_close(loss.double(), gold_loss, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(grad.double(), gold_grad, rtol=0, atol=1e-6)
    q, grad_q = _decode(hg.hl_gauss_decode, logits, upstream)
    gold_q, gold_grad_q = _decode(reference_torch.hl_gauss_decode, logits, upstream, cast=torch.float64)
    torch.testing.assert_close(q.double(), gold_q, rtol=0, atol=1e-5)
    torch.testing.assert_close(grad_q.double(), gold_grad_q, rtol=0, atol=1e-5)
    # A NaN target behaves as in the reference: its histogram is NaN, the select zeroes the loss, the
    # gradient row is NaN; other rows are untouched.
    targets = torch.tensor([float("nan"), 0.0, 1.0], device=DEVICE)
    for fn in (hg.hl_gauss_ce, reference_torch.hl_gauss_ce):
        loss, grad = _ce(fn, logits.nan_to_num(neginf=-30.0), targets, upstream)
        assert loss[0] == 0 and grad[0].isnan().all() and torch.isfinite(grad[1:]).all()


def test_leading_dims_no_grad_and_target_gradient(assert_hl_gauss_argument_errors):
    logits, targets, upstream = _inputs(4, 6, 151)
    flat = hg.hl_gauss_ce(logits, targets, **SUPPORT)  # logits need no gradient: the kernel writes none
    assert torch.equal(_ce(hg.hl_gauss_ce, logits, targets, upstream)[0], flat)
    nested = hg.hl_gauss_ce(logits.reshape(2, 3, 151), targets.reshape(2, 3), **SUPPORT)
    assert nested.shape == (2, 3) and torch.equal(nested.reshape(6), flat)
    assert hg.hl_gauss_decode(logits.reshape(2, 3, 151), **SUPPORT).shape == (2, 3)
    assert hg.hl_gauss_hist(targets.reshape(2, 3), num_bins=151, **SUPPORT).shape == (2, 3, 151)
    y = targets.clone().requires_grad_()
    out = hg.hl_gauss_ce(logits.bfloat16(), y, **SUPPORT)
    assert out.dtype == torch.float32 and not out.requires_grad  # targets get no gradient
    with torch.no_grad():
        assert torch.equal(hg.hl_gauss_ce(logits.requires_grad_(), targets, **SUPPORT), flat)
    assert_hl_gauss_argument_errors(hg, logits, targets, **SUPPORT)


def test_torch_compile_fullgraph_matches_eager():
    logits, targets, upstream = _inputs(6, 9, 151, 2.0)

    def loss(x, y):
        ce = hg.hl_gauss_ce(x, y, **SUPPORT)
        q = hg.hl_gauss_decode(x, **SUPPORT)
        p = hg.hl_gauss_hist(y, num_bins=151, **SUPPORT)
        return ce * upstream + q.square() + (p * x).sum(-1)

    results = []
    for fn in (loss, torch.compile(loss, fullgraph=True)):
        x = logits.clone().requires_grad_()
        value = fn(x, targets)
        results.append([value, *torch.autograd.grad(value, x, upstream.flip(0))])
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-6)


_AOT_SUPPORT = {"v_min": "fp64", "v_max": "fp64"}
_AOT_BLOCKS = {"BLOCK_B": "constexpr", "BLOCK_K": "constexpr"}
_AOT_K151 = {"BLOCK_B": 8, "BLOCK_K": 256}  # the real K = 151 padded, with the rows _launch_config packs


def _aot_ce_spec(logits="*fp32", out="*fp32", write_grad=True):
    signature = {"logits_ptr": logits, "targets_ptr": "*fp32", "loss_ptr": out, "grad_ptr": out,
                 "num_rows": "i32", "num_bins": "i32", "logits_stride_b": "i32", "logits_stride_k": "i32",
                 "targets_stride_b": "i32", **_AOT_SUPPORT, "sigma_ratio": "fp64", "WRITE_GRAD": "constexpr",
                 **_AOT_BLOCKS}
    constexprs = {"WRITE_GRAD": write_grad, "logits_stride_k": 1, "targets_stride_b": 1, **_AOT_K151}
    return "_hl_gauss_ce_fwd_kernel", signature, constexprs


def _aot_decode_spec(logits="*fp32", out="*fp32"):
    signature = {"logits_ptr": logits, "q_ptr": out, "num_rows": "i32", "num_bins": "i32",
                 "logits_stride_b": "i32", "logits_stride_k": "i32", **_AOT_SUPPORT, **_AOT_BLOCKS}
    return "_hl_gauss_decode_fwd_kernel", signature, {"logits_stride_k": 1, **_AOT_K151}


def _aot_decode_bwd_spec(logits="*fp32"):
    signature = {"logits_ptr": logits, "grad_q_ptr": "*fp32", "grad_logits_ptr": logits, "num_rows": "i32",
                 "num_bins": "i32", "logits_stride_b": "i32", "logits_stride_k": "i32",
                 "grad_q_stride_b": "i32", **_AOT_SUPPORT, **_AOT_BLOCKS}
    return "_hl_gauss_decode_bwd_kernel", signature, {"logits_stride_k": 1, **_AOT_K151}


def _aot_hist_spec(targets="*fp32", out="*fp32"):
    signature = {"targets_ptr": targets, "probs_ptr": out, "num_rows": "i32", "num_bins": "i32",
                 "targets_stride_b": "i32", **_AOT_SUPPORT, "sigma_ratio": "fp64", **_AOT_BLOCKS}
    return "_hl_gauss_hist_fwd_kernel", signature, {"targets_stride_b": 1, **_AOT_K151}


# Every kernel at K = 151 in fp32 (the trainer's), bf16 logits, fp64 end to end and the no-gradient CE.
AOT_SPECS = [
    _aot_ce_spec(),
    _aot_ce_spec(logits="*bf16"),
    _aot_ce_spec(logits="*fp64", out="*fp64"),
    _aot_ce_spec(write_grad=False),
    _aot_decode_spec(),
    _aot_decode_spec(logits="*bf16"),
    _aot_decode_spec(logits="*fp64", out="*fp64"),
    _aot_decode_bwd_spec(),
    _aot_decode_bwd_spec(logits="*bf16"),
    _aot_hist_spec(),
    _aot_hist_spec(targets="*fp64", out="*fp64"),
]


def test_aot_specs_compile_for_sm90(compile_aot_specs):
    names = compile_aot_specs("reppo_fast.kernels.triton_ops.hl_gauss_ce", AOT_SPECS)
    assert len(names) == len(AOT_SPECS)
    assert set(names) == {"_hl_gauss_ce_fwd_kernel", "_hl_gauss_decode_fwd_kernel",
                          "_hl_gauss_decode_bwd_kernel", "_hl_gauss_hist_fwd_kernel"}
