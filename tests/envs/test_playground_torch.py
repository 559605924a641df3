"""PlaygroundTorchEnv on CartpoleBalance: the JAX VecEnv driven from torch through DLPack.

One module-scoped env (jitting MJX costs ~15 s); the JAX references reuse its jit cache (same bound
methods), so they compile nothing more.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

pytest.importorskip("mujoco_playground")

from reppo_fast.envs import make_torch_env  # noqa: E402
from reppo_fast.envs.playground_torch import (  # noqa: E402
    PlaygroundTorchEnv,
    jax_to_torch,
    resolve_device,
    torch_to_jax,
)

pytestmark = pytest.mark.xdist_group("playground_torch")  # its module fixture is built once, on one worker

NUM_ENVS, EPISODE_LENGTH = 4, 3


@pytest.fixture(scope="module")
def env():
    return make_torch_env("Cartpole", num_envs=NUM_ENVS, episode_length=EPISODE_LENGTH, device="cpu")


def _actions(seed, num_steps):
    return 2 * torch.rand((num_steps, NUM_ENVS, 1), generator=torch.Generator().manual_seed(seed)) - 1


def _jax_rollout(vec_env, seed, actions):
    """The JAX VecEnv's EnvSteps for these actions. Inputs are committed to the CPU like the bridge's
    (a committed key, DLPack actions) and called the same way, so the bridge's jit cache entries are
    reused instead of recompiled."""
    cpu = jax.devices("cpu")[0]
    reset = jax.jit(vec_env.reset, static_argnames="random_step_count")
    state = reset(jax.device_put(jax.random.PRNGKey(seed), cpu), random_step_count=True)
    step = jax.jit(vec_env.step)
    outs = []
    for action in actions:
        state, out = step(state, jax.device_put(action.numpy(), cpu))
        outs.append(out)
    return outs


def test_steps_equal_the_jax_vec_env_with_the_same_key_and_actions(env):
    assert isinstance(env, PlaygroundTorchEnv) and env.device == torch.device("cpu")
    assert (env.name, env.obs_size, env.action_size, env.max_episode_steps) == ("CartpoleBalance", 5, 1, 3)
    obs = env.reset(7)
    assert obs.shape == (NUM_ENVS, 5) and obs.dtype == torch.float32 and obs.device == env.device
    actions = _actions(0, 2 * EPISODE_LENGTH)  # every env crosses a time limit, some twice
    for out, want in zip([env.step(a) for a in actions], _jax_rollout(env.vec_env, 7, actions)):
        assert out.obs.shape == out.next_obs.shape == (NUM_ENVS, 5) and out.reward.shape == (NUM_ENVS,)
        assert out.reward.dtype == torch.float32 and out.truncated.dtype == torch.bool
        for field, got, ref in zip(want._fields, out, want):
            np.testing.assert_array_equal(got.numpy(), np.asarray(ref), err_msg=field)


def test_truncation_returns_the_true_next_obs_and_resets(env):
    # test_playground_env.py checks that the JAX VecEnv's next_obs is the raw step's; equality with it
    # carries that over. Random initial counters (no recompile for random_step_count=False).
    env.reset(5)
    actions = _actions(1, EPISODE_LENGTH)
    for action in actions:
        counts = env.state_dict()["step_count"]
        out = env.step(action)
        assert not out.terminated.any() and not out.nonfinite.any()
        np.testing.assert_array_equal(out.truncated.numpy(), counts + 1 == EPISODE_LENGTH)
        np.testing.assert_array_equal(env.state_dict()["step_count"], (counts + 1) % EPISODE_LENGTH)
        ended = out.truncated
        assert ((out.obs[ended] - out.next_obs[ended]).abs().amax(dim=1) > 1e-4).all()  # the reset obs
        assert torch.equal(out.obs[~ended], out.next_obs[~ended])
    want = _jax_rollout(env.vec_env, 5, actions)[-1]
    np.testing.assert_array_equal(out.next_obs.numpy(), np.asarray(want.next_obs))
    assert torch.equal(env.obs, out.obs)


def test_state_dict_round_trip_continues_identically(env):
    actions = _actions(2, 6)
    env.reset(3)
    for action in actions[:2]:
        env.step(action)
    saved = env.state_dict()
    assert {"raw.data.qpos", "raw.info.rng", "obs", "step_count", "key"} <= set(saved)
    assert all(isinstance(v, np.ndarray) for v in saved.values())
    first = [env.step(action) for action in actions[2:]]
    resumed = PlaygroundTorchEnv(env.vec_env, device="cpu")
    resumed.load_state_dict(saved)
    for want, action in zip(first, actions[2:]):
        for got_leaf, want_leaf in zip(resumed.step(action), want):
            assert torch.equal(got_leaf, want_leaf)
    with pytest.raises(ValueError, match="missing"):
        resumed.load_state_dict({k: v for k, v in saved.items() if k != "key"})


def test_dlpack_is_zero_copy_and_outputs_stay_valid(env):
    action = _actions(3, 1)[0]
    assert torch_to_jax(action).unsafe_buffer_pointer() == action.data_ptr()
    array = jnp.arange(6.0)
    assert jax_to_torch(array).data_ptr() == array.unsafe_buffer_pointer()
    env.reset(4)
    assert env.obs.data_ptr() == env.jax_state.obs.unsafe_buffer_pointer()

    out = env.step(action)
    assert env.obs.data_ptr() == env.jax_state.obs.unsafe_buffer_pointer()
    kept = [x.clone() for x in out]
    action.fill_(0.5)  # the step has finished reading it: this must not change `out`
    strided = torch.rand(NUM_ENVS, 2)[:, :1]  # not contiguous: copied, then stepped
    for _ in range(3):
        env.step(strided)
    for got, want in zip(out, kept):  # JAX did not recycle the buffers torch still views
        assert torch.equal(got, want)
    with pytest.raises(ValueError, match="float32"):
        env.step(action.double())


def test_device_resolution_on_cpu():
    assert resolve_device(None)[0] == torch.device("cpu")
    if not jax.devices()[0].platform == "gpu":
        with pytest.raises(ValueError, match="GPU backend"):
            resolve_device("cuda")
