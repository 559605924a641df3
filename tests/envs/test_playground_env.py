"""mujoco_playground adapter on CartpoleBalance (MJX, impl="jax"): few tests, since jitting costs ~10 s."""

import jax
import numpy as np
import pytest

pytest.importorskip("mujoco_playground")

from reppo_fast.envs import make_env  # noqa: E402
from reppo_fast.envs.names import PLAYGROUND_ONLINE_ONLY, SUITES  # noqa: E402

EPISODE_LENGTH = 3


def test_static_name_lists_match_playground():
    from mujoco_playground._src import dm_control_suite, locomotion, manipulation

    assert set(SUITES["dmc"]) == set(dm_control_suite.ALL_ENVS)
    assert set(PLAYGROUND_ONLINE_ONLY) == set(locomotion.ALL_ENVS + manipulation.ALL_ENVS)


def test_default_time_limit_and_sizes():
    env = make_env("Cartpole", num_envs=4)
    assert (env.name, env.obs_size, env.action_size, env.max_episode_steps) == ("CartpoleBalance", 5, 1, 1000)


def test_steps_under_jit_and_truncation_returns_the_true_next_obs():
    env = make_env("CartpoleBalance", num_envs=4, episode_length=EPISODE_LENGTH)
    reset = jax.jit(env.reset, static_argnames="random_step_count")
    step = jax.jit(env.step)
    raw_step = jax.jit(env.raw.step)
    state = reset(jax.random.PRNGKey(0), random_step_count=False)
    assert state.obs.shape == (4, 5)
    actions = jax.random.uniform(jax.random.PRNGKey(1), (EPISODE_LENGTH, 4, 1), minval=-1, maxval=1)
    for t, action in enumerate(actions):
        prev = state
        state, out = step(state, action)
        assert out.obs.shape == out.next_obs.shape == (4, 5) and out.reward.shape == (4,)
        assert not out.terminated.any() and not out.nonfinite.any()
        np.testing.assert_array_equal(out.truncated, t == EPISODE_LENGTH - 1)
    for i in range(2):  # a single-env raw step from the same state gives the same true next obs
        raw_i = jax.tree.map(lambda x: x[i], prev.raw)
        np.testing.assert_allclose(out.next_obs[i], raw_step(raw_i, actions[-1, i]).obs, rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(out.obs) - np.asarray(out.next_obs)).max() > 1e-4
    np.testing.assert_array_equal(out.obs, state.raw.obs)
    np.testing.assert_array_equal(state.step_count, 0)
