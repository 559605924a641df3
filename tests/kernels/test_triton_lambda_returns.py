"""Triton lambda-returns against the float64 reference and the brute-force n-step oracle.

Runs in Triton's interpreter on CPU tensors without CUDA (tests/conftest.py), and the compiled kernel
on CUDA tensors on a GPU machine (reppo_fast.process_env.triton_device).
The interpreter costs a few ms per loop step and program, so shapes stay small and programs few.
"""

import numpy as np
import pytest
import torch

triton = pytest.importorskip("triton", reason="the Triton kernels need the triton package")

from reppo_fast.kernels import reference_torch  # noqa: E402
from reppo_fast.kernels.triton_ops import lambda_returns as triton_module  # noqa: E402
from reppo_fast.process_env import triton_device  # noqa: E402

DEVICE = triton_device()
GAMMA = 0.97


def _tensors(data, dtype, flag_dtype=torch.bool):
    rewards, next_values, terminated, truncated = data
    return (torch.tensor(rewards, dtype=dtype, device=DEVICE),
            torch.tensor(next_values, dtype=dtype, device=DEVICE),
            torch.tensor(terminated, device=DEVICE).to(flag_dtype),
            torch.tensor(truncated, device=DEVICE).to(flag_dtype))


def _kernel(args, gamma=GAMMA, lmbda=0.95):
    return triton_module.lambda_returns(*args, gamma=gamma, lmbda=lmbda)


def _reference(args, gamma=GAMMA, lmbda=0.95):
    return reference_torch.lambda_returns(*args, gamma=gamma, lmbda=lmbda)


def _gold(args, gamma=GAMMA, lmbda=0.95):
    """The reference in float64 on the very inputs the kernel saw (bf16-rounded ones included)."""
    rewards, next_values, terminated, truncated = args
    return _reference((rewards.double(), next_values.double(), terminated, truncated), gamma, lmbda)


# The bar's floor (tests/kernels/conftest.py): a few ulps of |G|, the kernel and the reference each
# rounding T dependent steps in their own way.
FLOOR_ULPS = 4
FLAG_SETS = ["random", "all_terminated", "all_truncated", "both"]


@pytest.mark.parametrize("lmbda", [0.0, 0.95, 1.0])
def test_float64_matches_n_step_oracle(lmbda, oracle_rollout, oracle_lambda_returns):
    shape, data = oracle_rollout
    got = _kernel(_tensors(data, torch.float64), lmbda=lmbda)
    assert got.dtype == torch.float64 and got.shape == shape
    # float64 end to end, gamma/lmbda passed as fp64: only reassociation error (~T ulp of |G|) remains.
    np.testing.assert_allclose(got.cpu().numpy(), oracle_lambda_returns(*data, GAMMA, lmbda),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lmbda", [0.0, 0.95, 1.0])
@pytest.mark.parametrize("flags", FLAG_SETS)
@pytest.mark.parametrize("flag_dtype", [torch.bool, torch.float32])
def test_float32_within_twice_the_reference_error(lmbda, flags, flag_dtype, assert_within_bar, rollout):
    args = _tensors(rollout(FLAG_SETS.index(flags), 37, 7, flags=flags), torch.float32, flag_dtype)
    got = _kernel(args, lmbda=lmbda)
    assert got.dtype == torch.float32
    assert_within_bar(got, _reference(args, lmbda=lmbda), _gold(args, lmbda=lmbda), floor_ulps=FLOOR_ULPS)


def test_extreme_inputs(extreme_rollout, assert_within_bar):
    gamma, lmbda, data = extreme_rollout
    args = _tensors(data, torch.float32)
    got = _kernel(args, gamma, lmbda)
    assert torch.isfinite(got).all()
    assert_within_bar(got, _reference(args, gamma, lmbda), _gold(args, gamma, lmbda), floor_ulps=FLOOR_ULPS)


def test_bf16_inputs_return_float32_within_twice_the_reference_error(assert_within_bar, rollout):
    args = _tensors(rollout(7, 37, 7), torch.bfloat16)
    got, reference = _kernel(args), _reference(args)
    assert got.dtype == reference.dtype == torch.float32
    assert_within_bar(got, reference, _gold(args), floor_ulps=FLOOR_ULPS)


def test_many_envs_few_programs(assert_within_bar, rollout):
    """N = 1000 (not a multiple of the block): 8 programs of 128 columns, the last one masked."""
    args = _tensors(rollout(8, 4, 1000, flags="both"), torch.float32)
    assert_within_bar(_kernel(args), _reference(args), _gold(args), floor_ulps=FLOOR_ULPS)


def test_non_contiguous_inputs_read_in_place(rollout):
    """Every input a transposed [N, T] tensor's .T, or a strided slice; same bits as contiguous inputs."""
    rewards, next_values, terminated, truncated = _tensors(rollout(9, 9, 37, flags="both"), torch.float32)
    expected = _kernel((rewards, next_values, terminated, truncated))
    transposed = [x.T.contiguous().T for x in (rewards, next_values, terminated, truncated)]
    assert not any(x.is_contiguous() for x in transposed)
    assert torch.equal(_kernel(transposed), expected)
    wide = [torch.stack([x, torch.zeros_like(x)], dim=-1).flatten(1)[:, ::2]
            for x in (rewards, next_values, terminated.float(), truncated)]  # stride_n = 2
    assert not any(x.is_contiguous() for x in wide)
    assert torch.equal(_kernel(wide), expected)


def test_any_leading_t_shape_like_the_reference(rollout):
    rewards, next_values, terminated, truncated = _tensors(rollout(11, 6, 6), torch.float32)
    for shape in [(6,), (6, 2, 3)]:
        args = [x[:, 0] if len(shape) == 1 else x.reshape(shape) for x in (rewards, next_values, terminated,
                                                                             truncated)]
        got = _kernel(args)
        assert got.shape == shape
        assert torch.equal(got, _reference(args))


def test_nan_in_unused_values_does_not_leak(rollout):
    rewards, next_values, terminated, truncated = _tensors(rollout(4, 6, 2), torch.float32)
    terminated[:], truncated[:] = False, False
    terminated[2, 0] = True
    next_values[2, 0] = float("nan")  # the value of a terminal state is never used
    truncated[3, 1] = True
    rewards[4, 1] = float("nan")  # G_4 belongs to the next episode: G_3 bootstraps from V_4 alone
    got = _kernel((rewards, next_values, terminated, truncated))
    assert torch.isfinite(got[:4]).all() and torch.isnan(got[4:, 1]).any()
    torch.testing.assert_close(got, _reference((rewards, next_values, terminated, truncated)),
                               rtol=0, atol=0, equal_nan=True)


def test_inputs_not_mutated_no_grad_and_requires_grad_inputs_accepted(rollout):
    args = list(_tensors(rollout(5, 9, 3), torch.float32, torch.float32))
    args[0].requires_grad_(True)
    args[1].requires_grad_(True)
    copies = [x.detach().clone() for x in args]
    out = _kernel(args)
    assert not out.requires_grad and out.grad_fn is None
    for before, after in zip(copies, args):
        assert torch.equal(before, after)


def test_shape_errors_like_the_reference(rollout, assert_lambda_returns_shape_errors):
    assert_lambda_returns_shape_errors(_kernel, *_tensors(rollout(6, 3, 2), torch.float32))


def test_custom_op_registrations(rollout):
    """Schema, fake (meta) kernel and autograd registration agree with the real kernel."""
    args = _tensors(rollout(12, 3, 5), torch.float32)
    torch.library.opcheck(triton_module._lambda_returns_op, (*args, GAMMA, 0.95))


def test_torch_compile_fullgraph_matches_eager(rollout):
    args = _tensors(rollout(13, 5, 7, flags="both"), torch.float32)

    def step(rewards, next_values, terminated, truncated):
        returns = triton_module.lambda_returns(rewards * 1.0, next_values, terminated, truncated,
                                               gamma=GAMMA, lmbda=0.95)
        return returns - next_values  # the advantage-like use in the trainer

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True)
    assert torch.equal(compiled(*args), step(*args))


_AOT_INPUTS = ("rewards", "next_values", "terminated", "truncated")
_AOT_SCALARS = {"gamma": "fp64", "lmbda": "fp64", "num_steps": "i32", "num_envs": "i32"}
_AOT_STRIDES = {f"{name}_stride_{axis}": "i32" for name in _AOT_INPUTS for axis in "tn"}
_AOT_CONTIGUOUS = {f"{name}_stride_n": 1 for name in _AOT_INPUTS}


def _aot_spec(values="*fp32", flags="*u8", out="*fp32", contiguous=True):
    signature = {"rewards_ptr": values, "next_values_ptr": values, "terminated_ptr": flags,
                 "truncated_ptr": flags, "returns_ptr": out, **_AOT_SCALARS, **_AOT_STRIDES,
                 "BLOCK_N": "constexpr"}
    constexprs = {"BLOCK_N": 128, **(_AOT_CONTIGUOUS if contiguous else {})}
    return "_lambda_returns_fwd_kernel", signature, constexprs


# The rollout's layouts (fp32 values, bool flags, contiguous [T, N]), bf16 values, float flags, fp64 end
# to end, and a strided (transposed) input.
AOT_SPECS = [
    _aot_spec(),
    _aot_spec(values="*bf16"),
    _aot_spec(flags="*fp32"),
    _aot_spec(values="*fp64", flags="*fp64", out="*fp64"),
    _aot_spec(contiguous=False),
]


def test_aot_specs_compile_for_sm90(compile_aot_specs):
    names = compile_aot_specs("reppo_fast.kernels.triton_ops.lambda_returns", AOT_SPECS)
    assert names == ["_lambda_returns_fwd_kernel"] * len(AOT_SPECS)
