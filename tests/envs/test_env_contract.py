"""The JAX env contract (docs/algorithms.md section 1) on ToyPointMass: true terminal obs, counters, NaN
handling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reppo_fast.envs import make_env
from reppo_fast.envs.contract_jax import EnvState, VecEnv
from reppo_fast.envs.toy_common import BOUND
from reppo_fast.envs.toy_jax import ToyPointMass

pytestmark = pytest.mark.xdist_group("env_contract")  # its module fixture is built once, on one worker

NUM_ENVS, MAX_STEPS, NAN_ABOVE = 8, 5, 10.0


@pytest.fixture(scope="module")
def env():
    return make_env("ToyPointMass", num_envs=NUM_ENVS, episode_length=MAX_STEPS, nan_above=NAN_ABOVE)


@pytest.fixture(scope="module")
def fns(env):
    return jax.jit(env.reset, static_argnames="random_step_count"), jax.jit(env.step)


def _actions(seed, num_steps):
    return jax.random.uniform(jax.random.PRNGKey(seed), (num_steps, NUM_ENVS, 2), minval=-1, maxval=1)


def _analytic_next_obs(obs, action):
    qpos, qvel = obs[:, :2], obs[:, 2:]
    qvel = 0.9 * qvel + 0.1 * action
    return np.concatenate([qpos + 0.1 * qvel, qvel], axis=1)


def test_truncation_returns_the_true_next_obs_and_a_reset_obs(fns):
    reset, step = fns
    state = reset(jax.random.PRNGKey(0), random_step_count=False)
    np.testing.assert_array_equal(state.step_count, 0)
    for t, action in enumerate(_actions(1, MAX_STEPS)):
        prev_obs = np.asarray(state.obs)
        state, out = step(state, action)
        last = t == MAX_STEPS - 1
        assert not out.terminated.any()
        np.testing.assert_array_equal(out.truncated, last)
        np.testing.assert_array_equal(state.step_count, 0 if last else t + 1)
        np.testing.assert_allclose(out.next_obs, _analytic_next_obs(prev_obs, np.asarray(action)),
                                   rtol=1e-6, atol=1e-6)
    # After the time limit, `obs` is a fresh episode's (v = 0), not the final obs.
    assert np.abs(np.asarray(out.obs) - np.asarray(out.next_obs)).max(axis=1).min() > 1e-3
    np.testing.assert_array_equal(out.obs[:, 2:], 0.0)
    np.testing.assert_array_equal(out.obs, state.obs)
    np.testing.assert_array_equal(state.raw.obs, state.obs)


def test_random_counters_and_truncation_exactly_at_the_limit():
    env = make_env("ToyPointMass", num_envs=64, episode_length=MAX_STEPS)
    state = env.reset(jax.random.PRNGKey(3))
    counts = np.asarray(state.step_count)
    assert state.step_count.dtype == jnp.int32
    assert counts.min() >= 0 and counts.max() < MAX_STEPS and len(np.unique(counts)) > 1
    step = jax.jit(env.step)
    zero = jnp.zeros((64, 2))  # v stays 0 and x stays in [-1, 1]: nothing terminates
    for _ in range(2 * MAX_STEPS):
        state, out = step(state, zero)
        np.testing.assert_array_equal(out.truncated, counts + 1 == MAX_STEPS)
        counts = np.where(counts + 1 == MAX_STEPS, 0, counts + 1)
        np.testing.assert_array_equal(state.step_count, counts)


def test_termination_beats_truncation_and_resets(env, fns):
    reset, step = fns
    state = reset(jax.random.PRNGKey(4), random_step_count=False)
    # Env 0 sits just inside the bound moving outwards, on the last step of its episode.
    qpos = state.raw.data.qpos.at[0].set(jnp.array([BOUND - 0.05, 0.0]))
    qvel = state.raw.data.qvel.at[0].set(jnp.array([1.0, 0.0]))
    raw = state.raw._replace(data=state.raw.data._replace(qpos=qpos, qvel=qvel),
                             obs=jnp.concatenate([qpos, qvel], axis=1))
    state = EnvState(raw, raw.obs, state.step_count.at[0].set(MAX_STEPS - 1), state.key)
    action = jnp.zeros((NUM_ENVS, 2)).at[0].set(jnp.array([1.0, 0.0]))
    state, out = step(state, action)
    np.testing.assert_array_equal(out.terminated, np.arange(NUM_ENVS) == 0)
    assert not out.truncated.any()
    np.testing.assert_allclose(out.next_obs[0], [BOUND + 0.05, 0.0, 1.0, 0.0], rtol=1e-6)
    assert state.step_count[0] == 0 and np.abs(out.obs[0, :2]).max() <= 1.0
    np.testing.assert_array_equal(state.step_count[1:], 1)


def test_nan_injection_is_contained_to_the_injected_envs(fns):
    reset, step = fns
    actions = _actions(5, 8)
    bad_envs, bad_step = np.array([2, 5]), 3
    injected = actions.at[bad_step, bad_envs, 1].set(2 * NAN_ABOVE)

    def run(acts):
        state = reset(jax.random.PRNGKey(6))
        outs = []
        for action in acts:
            prev_obs = state.obs
            state, out = step(state, action)
            outs.append((prev_obs, out))
        return outs

    clean, dirty = run(actions), run(injected)
    is_bad = np.isin(np.arange(NUM_ENVS), bad_envs)
    for t, ((_, ref), (prev_obs, out)) in enumerate(zip(clean, dirty)):
        for leaf in out:
            assert np.isfinite(np.asarray(leaf, np.float32)).all()
        np.testing.assert_array_equal(out.nonfinite, is_bad & (t == bad_step))
        for field in ("obs", "next_obs", "reward", "terminated", "truncated"):
            got, want = np.asarray(getattr(out, field)), np.asarray(getattr(ref, field))
            keep = ~is_bad if t >= bad_step else slice(None)
            np.testing.assert_array_equal(got[keep], want[keep], err_msg=f"{field} at step {t}")
        if t == bad_step:
            np.testing.assert_array_equal(out.terminated, is_bad | np.asarray(ref.terminated))
            assert not out.truncated[bad_envs].any()
            np.testing.assert_array_equal(out.reward[bad_envs], 0.0)
            np.testing.assert_array_equal(out.next_obs[bad_envs], prev_obs[bad_envs])
            np.testing.assert_array_equal(out.obs[bad_envs, 2:], 0.0)  # a fresh episode


def test_state_is_a_stable_scan_carry(env):
    def body(state, action):
        state, out = env.step(state, action)
        return state, out.reward

    state = env.reset(jax.random.PRNGKey(7))
    final, rewards = jax.jit(lambda s, a: jax.lax.scan(body, s, a))(state, _actions(8, 12))
    assert rewards.shape == (12, NUM_ENVS) and rewards.dtype == jnp.float32
    assert jax.tree.structure(final) == jax.tree.structure(state)


def test_nan_hidden_in_qpos_alone_is_caught():
    class HiddenNaN(ToyPointMass):
        """Finite obs and reward over NaN physics, as an env with a clamped observation could give."""

        def step(self, state, action):
            state = super().step(state, action)
            return state._replace(obs=jnp.nan_to_num(state.obs), reward=jnp.nan_to_num(state.reward))

    env = VecEnv(HiddenNaN(nan_above=NAN_ABOVE), num_envs=NUM_ENVS, max_episode_steps=MAX_STEPS, name="t")
    state = env.reset(jax.random.PRNGKey(9))
    action = jnp.zeros((NUM_ENVS, 2)).at[1, 0].set(2 * NAN_ABOVE)
    state, out = jax.jit(env.step)(state, action)
    np.testing.assert_array_equal(out.nonfinite, np.arange(NUM_ENVS) == 1)
    assert out.terminated[1] and np.isfinite(np.asarray(state.raw.data.qpos)).all()
