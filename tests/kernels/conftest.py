"""Fixtures shared by the kernel tests: the accuracy bar, ahead-of-time compilation of the Triton kernels,
the CUDA cross-lowering of the Pallas ones, and the oracles, cases and argument checks that the reference,
Pallas and Triton tests of one op share (fixtures, so that no test module imports another)."""

import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

# float32 is the compute dtype of every kernel for float32, bf16 and f16 inputs (float64 inputs are
# checked against the reference directly, not with the bar).
_EPS32 = float(np.finfo(np.float32).eps)


def _float64(x) -> np.ndarray:
    """A torch tensor (any device, dtype) or a numpy/JAX array as a float64 numpy array."""
    if hasattr(x, "detach"):
        return x.detach().double().cpu().numpy()
    return np.asarray(x, np.float64)


def _assert_within_bar(got, reference, gold, *, floor_ulps: float, name: str = "") -> None:
    """max|got - gold| <= 2 max|reference - gold| + floor_ulps * eps32 * (1 + max|gold|).

    The bar (flash-attention style): the kernel's error against the float64 gold is at most twice the
    plain framework reference's error in the same dtype, on the same device (so on CUDA the reference
    uses CUDA's math too). `gold` must be computed from the very inputs the kernel saw (bf16-rounded
    ones included), or the bar would measure the input rounding.

    The floor, a few float32 ulps of the gold's magnitude: the reference's error can be zero by luck
    (one element; a result it happens to round exactly), and a kernel that rounds as well but
    differently (another summation order, a contracted FMA) is then an ulp off. The magnitude is
    1 + |gold| because a small result of O(1) terms that cancel is only defined to an ulp of 1.
    """
    got, reference, gold = _float64(got), _float64(reference), _float64(gold)
    assert got.shape == gold.shape == reference.shape, (name, got.shape, reference.shape, gold.shape)
    err = np.abs(got - gold).max()
    ref_err = np.abs(reference - gold).max()
    floor = floor_ulps * _EPS32 * (1.0 + np.abs(gold).max())
    assert err <= 2.0 * ref_err + floor, (
        f"{name}: kernel error {err:.3g} > 2 x reference error {ref_err:.3g} + floor {floor:.3g}")


@pytest.fixture(scope="session")
def assert_within_bar():
    """The accuracy bar, `assert_within_bar(got, reference, gold, *, floor_ulps, name="")`."""
    return _assert_within_bar


# Run as `python -c _AOT_SCRIPT` with {"module", "specs", "needle"} as JSON on stdin; prints the compiled
# kernels' names as JSON. A constexpr given as a string names a triton.language dtype (ACC: "float32").
_AOT_SCRIPT = """
import importlib, json, sys
import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

request = json.load(sys.stdin)
module = importlib.import_module(request["module"])
names = []
for kernel, signature, constexprs in request["specs"]:
    fn = getattr(module, kernel)
    constexprs = {k: getattr(tl, v) if isinstance(v, str) else v for k, v in constexprs.items()}
    compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                              target=GPUTarget("cuda", 90, 32))
    assert request["needle"] in compiled.asm["ptx"], (kernel, signature, constexprs)
    names.append(fn.fn.__name__)
print(json.dumps(names))
"""


def _compile_aot_specs(module: str, specs: list, ptx_must_contain: str = "ld.global") -> list[str]:
    """Compile every (kernel name, signature, constexprs) of `specs`, kernels of `module`, for sm_90; the
    kernels' names, one per spec. Each PTX must contain `ptx_must_contain`. The specs live in the test
    files (test_triton_*.py), not in the library.

    In a fresh interpreter without TRITON_INTERPRET, never in the test process: once interpreted kernels
    with @triton.jit helpers have run, triton.language's builtins (tl.arange, ...) stay patched with
    the interpreter's versions, and the compiler's front end then fails on a fresh Triton cache
    ("'ir.value' object has no attribute 'dtype'" at tl.arange); a warm cache hid it. Under
    TRITON_INTERPRET=1 @triton.jit also returns kernels that triton.compile cannot take. Hence the specs
    travel as JSON and name their kernels."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    request = json.dumps({"module": module, "specs": specs, "needle": ptx_must_contain})
    done = subprocess.run([sys.executable, "-c", _AOT_SCRIPT], input=request, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="session")
def compile_aot_specs():
    """`compile_aot_specs(module, specs, ptx_must_contain="ld.global") -> kernel names`: `specs` compiled
    for sm_90 in a subprocess (see `_compile_aot_specs`)."""
    return _compile_aot_specs


def _abstract_gpu(device_kind: str):
    """A context in which the Pallas Triton lowering targets `device_kind` without a local GPU. jax 0.11's
    lowering asks the abstract mesh's device for the GPU (and fails on a CPU-only jaxlib without one);
    jax 0.10's targets a default and ignores it."""
    import jax

    sharding = jax.sharding
    if not hasattr(sharding, "AbstractDevice") or not hasattr(sharding, "use_abstract_mesh"):
        return contextlib.nullcontext()
    device = sharding.AbstractDevice(device_kind=device_kind, num_cores=None, platform="gpu")
    return sharding.use_abstract_mesh(sharding.AbstractMesh((1,), ("x",), abstract_device=device))


def _lower_for_cuda(fn, *avals, device_kind: str = "NVIDIA H100") -> str:
    """StableHLO text of jax.jit(fn) at `avals` lowered for CUDA, on any machine (no GPU needed)."""
    import jax

    with _abstract_gpu(device_kind):
        return jax.jit(fn).trace(*avals).lower(lowering_platforms=("cuda",)).as_text()


@pytest.fixture(scope="session")
def lower_for_cuda():
    """`lower_for_cuda(fn, *avals, device_kind="NVIDIA H100") -> StableHLO text`: the Pallas kernels'
    CUDA lowering (call the ops with interpret=False), on a CPU-only jaxlib of jax 0.10 or 0.11."""
    return _lower_for_cuda


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


def _oracle_lambda_returns(rewards, next_values, terminated, truncated, gamma, lmbda):
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


@pytest.fixture(scope="session")
def oracle_lambda_returns():
    """`oracle_lambda_returns(rewards, next_values, terminated, truncated, gamma, lmbda)`: float64 lambda
    returns by brute force over the n-step returns, sharing no recursion with the code under test."""
    return _oracle_lambda_returns


def _rollout(seed, num_steps, num_envs, flags="random", value_scale=5.0, reward_scale=1.0, flag_dtype=bool):
    """Numpy float64 rewards/next_values and flags [T, N] (flag_dtype); column 0 carries the special flags."""
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(num_steps, num_envs)) * reward_scale
    next_values = rng.normal(size=(num_steps, num_envs)) * value_scale
    terminated = rng.random((num_steps, num_envs)) < 0.1
    truncated = rng.random((num_steps, num_envs)) < 0.1
    if flags == "all_terminated":
        terminated[:, 0] = True
    if flags == "all_truncated":
        truncated[:, 0] = True
    if flags == "both":
        terminated[::3, 0] = truncated[::3, 0] = True  # terminated must win
    return rewards, next_values, terminated.astype(flag_dtype), truncated.astype(flag_dtype)


@pytest.fixture(scope="session")
def rollout():
    """`rollout(seed, num_steps, num_envs, flags="random", value_scale=5.0, reward_scale=1.0,
    flag_dtype=bool)`: random inputs of lambda_returns; flags "all_terminated", "all_truncated" or "both"
    set in column 0."""
    return _rollout


# The kernels' float64 cases against the oracle: every flag set in column 0, with one step or several, one
# env or several (a kernel's block masks and padding); each (flags, shape) its own seed.
_ORACLE_SHAPES = [(1, 1), (1, 4), (12, 1), (8, 37)]
_ORACLE_FLAG_SETS = ["random", "all_terminated", "all_truncated", "both"]
_ORACLE_CASES = [(flags, shape) for flags in _ORACLE_FLAG_SETS for shape in _ORACLE_SHAPES]


@pytest.fixture(params=_ORACLE_CASES, ids=[f"{f}-shape{_ORACLE_SHAPES.index(s)}" for f, s in _ORACLE_CASES])
def oracle_rollout(request):
    """(shape, rollout) of a lambda-returns kernel's float64 check against `oracle_lambda_returns`."""
    flags, shape = request.param
    seed = 10 * _ORACLE_SHAPES.index(shape) + _ORACLE_FLAG_SETS.index(flags)
    return shape, _rollout(seed, *shape, flags=flags)


_EXTREME_DISCOUNTS = [  # (gamma, lmbda, reward_scale, value_scale)
    (0.999, 0.95, 1e3, 1e5),  # large returns, gamma close to 1
    (1.0, 1.0, 1.0, 1e-30),  # undiscounted Monte-Carlo returns, tiny values
    (0.5, 0.3, 1e-3, 1e30),  # huge values: still finite in fp32
]


@pytest.fixture(params=_EXTREME_DISCOUNTS, ids=["-".join(map(str, p)) for p in _EXTREME_DISCOUNTS])
def extreme_rollout(request):
    """(gamma, lmbda, rollout) at the extremes of the discounts and of the rewards' and values' scales."""
    gamma, lmbda, reward_scale, value_scale = request.param
    return gamma, lmbda, _rollout(3, 37, 5, reward_scale=reward_scale, value_scale=value_scale)


def _assert_lambda_returns_shape_errors(lambda_returns, rewards, next_values, terminated, truncated):
    with pytest.raises(ValueError, match="share one"):
        lambda_returns((rewards, next_values[:2], terminated, truncated))
    with pytest.raises(ValueError, match="T >= 1"):
        lambda_returns((rewards[:0], next_values[:0], terminated[:0], truncated[:0]))


@pytest.fixture(scope="session")
def assert_lambda_returns_shape_errors():
    """`assert_lambda_returns_shape_errors(kernel, rewards, next_values, terminated, truncated)`, `kernel`
    taking the four as one tuple: the references' ValueErrors, for inputs of two shapes and for T = 0."""
    return _assert_lambda_returns_shape_errors


def _tanh_normal_inputs(seed, B, A, S, dtype=np.float32):
    """[mean, log_std, noise, old_mean, old_log_std, old_noise] as numpy dtype: [B, A] each, old_noise
    [S, B, A]; means and noises ~ N(0, 1), log-stds uniform in [-2, 0.5)."""
    rng = np.random.default_rng(seed)
    mean, old_mean = rng.normal(size=(2, B, A))
    log_std, old_log_std = rng.uniform(-2.0, 0.5, size=(2, B, A))
    noise = rng.normal(size=(B, A))
    old_noise = rng.normal(size=(S, B, A))
    return [x.astype(dtype) for x in (mean, log_std, noise, old_mean, old_log_std, old_noise)]


@pytest.fixture(scope="session")
def tanh_normal_inputs():
    """`tanh_normal_inputs(seed, B, A, S, dtype=np.float32)`: the six numpy inputs of tanh_normal."""
    return _tanh_normal_inputs


def _kl_mode_args(inputs, mode):
    """The arguments of tanh_normal for a KL mode: none, analytic (old mean and log-std) or sampled (and
    old noise)."""
    return inputs[:3] + {"none": [], "analytic": inputs[3:5], "sampled": inputs[3:]}[mode]


@pytest.fixture(scope="session")
def kl_mode_args():
    """`kl_mode_args(inputs, mode)`: the first 3, 5 or 6 of the six tanh_normal inputs (a list)."""
    return _kl_mode_args


def _assert_tanh_normal_argument_errors(tanh_normal, mean, log_std, noise, old_mean, old_log_std, old_noise):
    with pytest.raises(ValueError, match="together"):
        tanh_normal(mean, log_std, noise, old_mean)
    with pytest.raises(ValueError, match="needs old_mean"):
        tanh_normal(mean, log_std, noise, old_noise=old_noise)
    with pytest.raises(ValueError, match="old_noise must be"):
        tanh_normal(mean, log_std, noise, old_mean, old_log_std, old_noise[0])


@pytest.fixture(scope="session")
def assert_tanh_normal_argument_errors():
    """`assert_tanh_normal_argument_errors(tanh_normal, *six_inputs)`: the ValueErrors that references and
    kernels alike raise for half an old policy, old noise without one, and old noise of the wrong rank."""
    return _assert_tanh_normal_argument_errors


def _assert_hl_gauss_argument_errors(module, logits, targets, **support):
    with pytest.raises(ValueError, match="must match"):
        module.hl_gauss_ce(logits, targets[:3], **support)
    with pytest.raises(ValueError, match="num_bins"):
        module.hl_gauss_hist(targets, num_bins=1, **support)
    with pytest.raises(ValueError, match="v_min < v_max"):
        module.hl_gauss_ce(logits, targets, v_min=1.0, v_max=1.0)
    with pytest.raises(ValueError, match="sigma_ratio"):
        module.hl_gauss_ce(logits, targets, **support, sigma_ratio=0.0)


@pytest.fixture(scope="session")
def assert_hl_gauss_argument_errors():
    """`assert_hl_gauss_argument_errors(module, logits, targets, v_min=..., v_max=...)`: the ValueErrors a
    kernel module raises for more targets than logits rows, one bin, an empty support and sigma_ratio 0."""
    return _assert_hl_gauss_argument_errors
