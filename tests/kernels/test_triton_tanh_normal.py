"""Triton tanh_normal against the float64 reference: values, gradients, KL modes, strides, bf16, compile, AOT.

The bar (tests/kernels/conftest.py, flash-attention style): the kernel's max abs error against the
reference run in float64 is at most 2x the plain PyTorch reference's error in the same input dtype on
the same device, plus a floor of half a float32 ulp of 1 + |gold| (FLOOR_ULPS).
"""

import pytest
import torch

triton = pytest.importorskip("triton", reason="the Triton kernels need the triton package")

from reppo_fast.kernels import reference_torch  # noqa: E402
from reppo_fast.kernels.triton_ops import tanh_normal as tn  # noqa: E402
from reppo_fast.process_env import triton_device  # noqa: E402

DEVICE = triton_device()
# Single elements where O(1) terms cancel (e.g. grad_log_std = g_u s noise - g_log_prob) are only
# defined to about half an ulp of 1.
FLOOR_ULPS = 0.5
OUTPUTS = ("action", "log_prob", "kl")
MODES = ("none", "analytic", "sampled")


def _inputs(seed, B, A, S, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    mean, old_mean = torch.randn(2, B, A, generator=g, dtype=torch.float64)
    log_std, old_log_std = torch.rand(2, B, A, generator=g, dtype=torch.float64) * 2.5 - 2.0
    noise = torch.randn(B, A, generator=g, dtype=torch.float64)
    old_noise = torch.randn(S, B, A, generator=g, dtype=torch.float64)
    return [x.to(DEVICE, dtype) for x in (mean, log_std, noise, old_mean, old_log_std, old_noise)]


def _run(fn, args, upstream, cast=None):
    """Outputs and (grad_mean, grad_log_std) of `fn` for the upstream grads given (a dict by output)."""
    args = [a if cast is None else a.to(cast) for a in args]
    mean, log_std = (a.detach().clone().requires_grad_() for a in args[:2])
    out = fn(mean, log_std, *args[2:])._asdict()
    used = [name for name in upstream if out[name] is not None]
    grads = torch.autograd.grad([out[n] for n in used], [mean, log_std],
                                [upstream[n].to(out[n].dtype) for n in used], allow_unused=True)
    values = {n: o for n, o in out.items() if o is not None}
    values.update({f"grad_{k}": torch.zeros_like(mean) if g is None else g
                   for k, g in zip(("mean", "log_std"), grads)})
    return values


def _results(args, upstream):
    """(kernel, reference, float64 gold): {quantity: value} each, from the same inputs on DEVICE."""
    gold = _run(reference_torch.tanh_normal, args, upstream, cast=torch.float64)
    ref = _run(reference_torch.tanh_normal, args, upstream)
    ours = _run(tn.tanh_normal, args, upstream)
    assert ours.keys() == ref.keys() == gold.keys()
    for name in ours:
        assert ours[name].dtype == ref[name].dtype and ours[name].shape == ref[name].shape, name
    return ours, ref, gold


def _check(assert_within_bar, results):
    ours, ref, gold = results
    for name in ours:
        assert_within_bar(ours[name], ref[name], gold[name], floor_ulps=FLOOR_ULPS, name=name)


def _upstream(seed, B, A, names=OUTPUTS):
    g = torch.Generator().manual_seed(seed)
    shapes = {"action": (B, A), "log_prob": (B,), "kl": (B,)}
    return {n: torch.randn(shapes[n], generator=g).to(DEVICE) for n in names}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("B,A,S", [(1, 1, 1), (37, 3, 16), (7, 21, 16), (37, 21, 1)])
def test_values_and_gradients_match_float64(mode, B, A, S, assert_within_bar, kl_mode_args):
    inputs = _inputs(B * 100 + A, B, A, S)
    _check(assert_within_bar, _results(kl_mode_args(inputs, mode), _upstream(B + A, B, A)))


@pytest.mark.parametrize("mode", ["analytic", "sampled"])
def test_kl_between_close_policies(mode, assert_within_bar, kl_mode_args):
    # The training regime (KL ~ kl_target = 0.1): the old policy is a small step from the new one.
    B, A, S = 37, 21, 16
    inputs = _inputs(14, B, A, S)
    g = torch.Generator().manual_seed(15)
    inputs[3] = inputs[0] + 0.05 * torch.randn(B, A, generator=g).to(DEVICE)
    inputs[4] = inputs[1] + 0.05 * torch.randn(B, A, generator=g).to(DEVICE)
    _check(assert_within_bar, _results(kl_mode_args(inputs, mode), _upstream(16, B, A)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("names", [("action",), ("log_prob",), ("kl",), ("action", "kl")])
def test_gradients_with_some_upstream_absent(mode, names, assert_within_bar, kl_mode_args):
    B, A, S = 7, 3, 4
    inputs = _inputs(1, B, A, S)
    _check(assert_within_bar, _results(kl_mode_args(inputs, mode), _upstream(2, B, A, names)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ["plus15", "minus15", "spread"])
def test_saturated_pre_tanh(mode, case, assert_within_bar, kl_mode_args):
    # |u| > 10: tanh rounds to +-1 and the naive 1 - tanh^2 is 0; "spread" runs |u| up to ~60, where
    # exp(-2|u|) itself underflows in float32, through both signs.
    B, A, S = 9, 3, 4
    inputs = _inputs(3, B, A, S)
    jitter = 0.1 * inputs[0]
    inputs[0] = {"plus15": 15.0 + jitter, "minus15": -15.0 + jitter,
                 "spread": torch.linspace(-60.0, 60.0, B * A, device=DEVICE).reshape(B, A)}[case]
    results = _results(kl_mode_args(inputs, mode), _upstream(4, B, A))
    _check(assert_within_bar, results)
    assert results[2]["log_prob"].abs().max() > 20.0  # the log-det term really is large


@pytest.mark.parametrize("mode", MODES)
def test_non_contiguous_inputs_and_upstream(mode, assert_within_bar, kl_mode_args):
    B, A, S = 37, 3, 4
    g = torch.Generator().manual_seed(5)
    mean, log_std = (torch.randn(B, 2 * A, generator=g) * 0.8).to(DEVICE).chunk(2, dim=-1)  # row stride 2A
    noise = torch.randn(A, B, generator=g).to(DEVICE).t()  # column-major
    old_mean = torch.randn(B, 3 * A, generator=g).to(DEVICE)[:, ::3]  # column stride 3
    old_log_std = (torch.rand(A, B, generator=g) - 1.0).to(DEVICE).t()
    old_noise = torch.randn(B, S, A, generator=g).to(DEVICE).transpose(0, 1)
    inputs = [mean, log_std, noise, old_mean, old_log_std, old_noise]
    assert not any(x.is_contiguous() for x in inputs)
    upstream = {"action": torch.randn(A, B, generator=g).to(DEVICE).t(),
                "log_prob": torch.randn(2 * B, generator=g).to(DEVICE)[::2],
                "kl": torch.randn(1, generator=g).to(DEVICE).expand(B)}  # stride 0, as from .sum()
    _check(assert_within_bar, _results(kl_mode_args(inputs, mode), upstream))


@pytest.mark.parametrize("mode", MODES)
def test_bf16_inputs(mode, assert_within_bar, kl_mode_args):
    B, A, S = 37, 21, 4
    inputs = _inputs(6, B, A, S, dtype=torch.bfloat16)
    args = kl_mode_args(inputs, mode)
    out = tn.tanh_normal(args[0].requires_grad_(), args[1].requires_grad_(), *args[2:])
    assert all(o.dtype == torch.float32 for o in out if o is not None)  # as the reference
    grads = torch.autograd.grad(out.log_prob.sum(), args[:2])
    assert all(g.dtype == torch.bfloat16 for g in grads)  # gradients come back in the inputs' dtype
    _check(assert_within_bar, _results([a.detach() for a in args], _upstream(7, B, A)))


@pytest.mark.parametrize("mode", ["analytic", "sampled"])
def test_float64_matches_reference_and_gradcheck(mode, kl_mode_args):
    B, A, S = 3, 2, 4
    inputs = _inputs(8, B, A, S, dtype=torch.float64)
    ours, _, gold = _results(kl_mode_args(inputs, mode), _upstream(9, B, A))
    for name in ours:
        assert (ours[name] - gold[name]).abs().max() <= 1e-12 * (1.0 + gold[name].abs().max()), name
    frozen = kl_mode_args(inputs, mode)[2:]

    def fn(mean, log_std):
        return tuple(tn.tanh_normal(mean, log_std, *frozen))

    assert torch.autograd.gradcheck(fn, tuple(x.clone().requires_grad_() for x in inputs[:2]))


def test_kl_is_none_without_old_policy_and_nothing_reaches_constants():
    B, A, S = 5, 3, 2
    mean, log_std, noise, old_mean, old_log_std, old_noise = _inputs(10, B, A, S)
    assert tn.tanh_normal(mean, log_std, noise).kl is None
    leaves = [x.clone().requires_grad_() for x in (mean, log_std, noise, old_mean, old_log_std, old_noise)]
    out = tn.tanh_normal(*leaves)
    grads = torch.autograd.grad(list(out), leaves, list(_upstream(11, B, A).values()), allow_unused=True)
    assert grads[0] is not None and grads[1] is not None
    assert all(g is None for g in grads[2:])


@pytest.mark.parametrize("shape", [(3,), (2, 5, 3), (0, 3), (4, 0)])
def test_other_leading_dims_and_empty_shapes(shape):
    # The reference reduces over dim -1 of any shape; the kernel flattens the leading dims into B.
    g = torch.Generator().manual_seed(17)
    mean, log_std, noise, old_mean, old_log_std = (torch.randn(shape, generator=g).to(DEVICE)
                                                   for _ in range(5))
    old_noise = torch.randn((2, *shape), generator=g).to(DEVICE)
    for args in ([mean, log_std, noise], [mean, log_std, noise, old_mean, old_log_std, old_noise]):
        ours, ref = (fn(*(a.double() for a in args)) for fn in (tn.tanh_normal, reference_torch.tanh_normal))
        for got, expected in zip(ours, ref):
            assert (got is None) == (expected is None)
            if got is not None:
                torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_bad_arguments_raise(assert_tanh_normal_argument_errors):
    assert_tanh_normal_argument_errors(tn.tanh_normal, *_inputs(12, 5, 3, 2))


def test_torch_compile_fullgraph_matches_eager():
    B, A, S = 7, 3, 4
    inputs = _inputs(13, B, A, S)

    def loss(mean, log_std, noise, old_mean, old_log_std, old_noise):
        action, log_prob, kl = tn.tanh_normal(mean, log_std, noise, old_mean, old_log_std, old_noise)
        return (action * 0.3).sum(-1) + 0.2 * log_prob + torch.where(kl < 0.5, kl, 2.0 * kl)

    results = []
    for fn in (loss, torch.compile(loss, fullgraph=True)):
        leaves = [x.clone().requires_grad_() for x in inputs[:2]]
        value = fn(*leaves, *inputs[2:])
        results.append([value, *torch.autograd.grad(value, leaves, torch.linspace(-1.0, 1.0, B).to(DEVICE))])
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-6)


def _aot_specs():
    """(kernel, signature, constexprs) for sm_90 (conftest's compile_aot_specs): the DMC shape
    (B, A, S) = (2048, 21, 16), so BLOCK_A = 32 and BLOCK_B = 16, forward and backward in every KL mode for
    fp32 and bf16 inputs; then float64 inputs, sampled KL (ACC float64: exp/log through libdevice)."""
    fwd_ptrs = ["mean_ptr", "log_std_ptr", "noise_ptr", "old_mean_ptr", "old_log_std_ptr", "old_noise_ptr"]
    strides = [f"{name}_stride_{axis}" for name in ("mean", "log_std", "noise", "old_mean", "old_log_std")
               for axis in "ba"] + ["old_noise_stride_s", "old_noise_stride_b", "old_noise_stride_a"]
    specs = []
    for in_ty in ("*fp32", "*bf16"):
        for kl_mode in (tn._KL_NONE, tn._KL_ANALYTIC, tn._KL_SAMPLED):
            common = {**{p: in_ty for p in fwd_ptrs}, "num_rows": "i32", "num_actions": "i32",
                      "num_samples": "i32", **{s: "i32" for s in strides}}
            consts = {"KL_MODE": kl_mode, "ACC": "float32", "BLOCK_B": 16, "BLOCK_A": 32}
            fwd_sig = {**common, "action_ptr": "*fp32", "log_prob_ptr": "*fp32", "kl_ptr": "*fp32",
                       **{k: "constexpr" for k in ("KL_MODE", "ACC", "BLOCK_B", "BLOCK_A")}}
            specs.append(("_tanh_normal_fwd_kernel", fwd_sig, consts))
            bwd_sig = {**common, "g_action_ptr": "*fp32", "g_log_prob_ptr": "*fp32", "g_kl_ptr": "*fp32",
                       "grad_mean_ptr": in_ty, "grad_log_std_ptr": in_ty,
                       **{s: "i32" for s in ("g_action_stride_b", "g_action_stride_a", "g_log_prob_stride_b",
                                             "g_kl_stride_b")},
                       **{k: "constexpr" for k in ("KL_MODE", "ACC", "HAS_G_ACTION", "HAS_G_LOG_PROB",
                                                   "HAS_G_KL", "BLOCK_B", "BLOCK_A")}}
            specs.append(("_tanh_normal_bwd_kernel", bwd_sig,
                          {**consts, "HAS_G_ACTION": True, "HAS_G_LOG_PROB": True,
                           "HAS_G_KL": kl_mode != tn._KL_NONE}))
    for kernel, sig, consts in specs[-2:]:
        fp64 = {k: ("*fp64" if v.startswith("*") else v) for k, v in sig.items()}
        specs.append((kernel, fp64, {**consts, "ACC": "float64"}))
    return specs


AOT_SPECS = _aot_specs()


def test_aot_specs_compile_for_sm90(compile_aot_specs):
    names = compile_aot_specs("reppo_fast.kernels.triton_ops.tanh_normal", AOT_SPECS)
    assert len(names) == len(AOT_SPECS)
    assert set(names) == {"_tanh_normal_fwd_kernel", "_tanh_normal_bwd_kernel"}
