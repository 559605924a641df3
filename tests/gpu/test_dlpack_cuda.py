"""The JAX <-> torch DLPack bridge on CUDA (reppo_fast/envs/playground_torch.py), which the torch path's DM
Control envs cross twice per step: zero copy (both sides see one buffer), and stream order. JAX and torch
run on different CUDA streams, so a consumer on one side launched right after a long producer on the other
reads unfinished memory unless the exchange makes its stream wait. The producer here is a chain of large
matmuls whose result is written only after they finish; the consumer checks every value at once. Repeated,
since a race shows only sometimes. Skips without CUDA in torch and a CUDA backend in JAX."""

import numpy as np
import pytest
import torch

N = 8192  # 8192 x 8192 float32 matmuls: milliseconds each on an H200, an age for a stream race
CHAIN, REPEATS, OUT = 4, 10, 1 << 20


@pytest.fixture(scope="module")
def jax_gpu():
    """The JAX module once both sides have CUDA (XLA_PYTHON_CLIENT_PREALLOCATE=false comes from
    tests/conftest.py: JAX must leave GPU memory to torch)."""
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA GPU")
    import jax

    try:
        jax.devices("gpu")
    except RuntimeError:
        pytest.skip("this jaxlib has no CUDA backend (jax[cuda12], or the GPU image's jax-cuda13-plugin)")
    return jax


def test_both_ways_are_zero_copy(jax_gpu):
    import jax.numpy as jnp

    from reppo_fast.envs.playground_torch import jax_to_torch, torch_to_jax

    y = jax_gpu.device_put(jnp.arange(1024, dtype=jnp.float32), jax_gpu.devices("gpu")[0])
    t = jax_to_torch(y)
    assert t.device.type == "cuda" and t.data_ptr() == y.unsafe_buffer_pointer()
    np.testing.assert_array_equal(t.cpu().numpy(), np.asarray(y))
    x = torch.arange(1024, dtype=torch.float32, device="cuda")
    j = torch_to_jax(x)
    assert j.unsafe_buffer_pointer() == x.data_ptr()
    assert next(iter(j.devices())).platform == "gpu"
    flags = jax_to_torch(jax_gpu.device_put(jnp.array([True, False, True]), jax_gpu.devices("gpu")[0]))
    assert flags.dtype == torch.bool and flags.tolist() == [True, False, True]  # EnvStep's flag fields


def test_torch_waits_for_a_long_jax_producer(jax_gpu):
    import jax.numpy as jnp

    from reppo_fast.envs.playground_torch import jax_to_torch

    x = jax_gpu.random.normal(jax_gpu.random.PRNGKey(0), (N, N), jnp.float32) / np.sqrt(N)

    @jax_gpu.jit
    def produce(x, value):
        y = x
        for _ in range(CHAIN):
            y = jnp.tanh(y @ x)
        # `value` everywhere, written only after the chain: min(|.|, 0) is 0 but XLA cannot fold it away.
        return jnp.full((OUT,), value, jnp.float32) + jnp.minimum(jnp.abs(y[0, 0]), 0.0)

    produce(x, 0.0).block_until_ready()  # compiled before the race, so each call is just the kernels
    wrong = []
    for i in range(1, REPEATS + 1):
        t = jax_to_torch(produce(x, float(i)))  # dispatched asynchronously: still running here
        if not bool((t == i).all()):  # a torch kernel on torch's stream reads it at once
            wrong.append(i)
    assert not wrong, f"torch read unfinished JAX output in repeats {wrong}"


def test_jax_waits_for_a_long_torch_producer(jax_gpu):
    import jax.numpy as jnp

    from reppo_fast.envs.playground_torch import torch_to_jax

    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(N, N, device="cuda", generator=g) / N ** 0.5
    wrong = []
    for i in range(1, REPEATS + 1):
        y = a
        for _ in range(CHAIN):
            y = torch.tanh(y @ a)
        b = torch.full((OUT,), float(i), device="cuda") + torch.clamp(y[0, 0].abs(), max=0.0)
        j = torch_to_jax(b)  # torch's kernels are still queued or running here
        if not bool(jnp.all(j == i)):  # a JAX kernel on JAX's stream reads it at once
            wrong.append(i)
    assert not wrong, f"JAX read unfinished torch output in repeats {wrong}"
