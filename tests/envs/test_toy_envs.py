"""ToyPointMass: JAX and torch implement the same dynamics; the task separates good from random."""

import jax
import jax.numpy as jnp
import numpy as np
import torch

from reppo_fast.envs import make_env
from reppo_fast.envs.toy_jax import ToyPointMass
from reppo_fast.envs.toy_torch import ToyPointMassTorch


def test_jax_and_torch_dynamics_match_on_identical_inputs():
    num_envs, action_size, num_steps, nan_above = 16, 3, 50, 1.5
    env_jax = ToyPointMass(action_size=action_size, nan_above=nan_above)
    env_torch = ToyPointMassTorch(num_envs, action_size=action_size, nan_above=nan_above)
    state_jax = jax.vmap(env_jax.reset)(jax.random.split(jax.random.PRNGKey(0), num_envs))
    state_torch = env_torch.reset(qpos=torch.from_numpy(np.array(state_jax.data.qpos)))
    # Strong pushes so some envs leave the bound (done), and one action above nan_above (NaN).
    actions = np.random.default_rng(1).uniform(-1.4, 1.4, (num_steps, num_envs, action_size))
    actions[:, :4] = 1.0
    actions[10, 7, 0] = 2.0
    step_jax = jax.jit(jax.vmap(env_jax.step))
    for action in actions.astype(np.float32):
        state_jax = step_jax(state_jax, jnp.asarray(action))
        state_torch = env_torch.step(state_torch, torch.from_numpy(action))
        for leaf_jax, leaf_torch in zip(jax.tree.leaves(state_jax), state_torch_leaves(state_torch)):
            np.testing.assert_allclose(np.asarray(leaf_jax), leaf_torch.numpy(), rtol=1e-5, atol=1e-6)
    assert np.asarray(state_jax.done)[:4].all()
    assert np.isnan(np.asarray(state_jax.obs)[7]).all()


def state_torch_leaves(state):
    return [state.data.qpos, state.data.qvel, state.obs, state.reward, state.done]


def test_torch_reset_from_a_generator():
    env = ToyPointMassTorch(32)
    first = env.reset(torch.Generator().manual_seed(0))
    again = env.reset(torch.Generator().manual_seed(0))
    torch.testing.assert_close(first.obs, again.obs)
    assert first.obs.shape == (32, 4) and first.data.qpos.abs().max() <= 1.0
    assert (first.data.qvel == 0).all()


def test_a_good_policy_beats_random_by_far():
    num_envs, episode_length = 64, 100
    env = make_env("ToyPointMass", num_envs=num_envs, episode_length=episode_length)

    def episode_return(policy, key):
        def body(carry, key):
            state, total = carry
            state, out = env.step(state, policy(state.obs, key))
            return (state, total + out.reward), None

        state = env.reset(jax.random.PRNGKey(0), random_step_count=False)
        keys = jax.random.split(key, episode_length)
        (_, total), _ = jax.lax.scan(body, (state, jnp.zeros(num_envs)), keys)
        return float(total.mean())

    def random_policy(obs, key):
        return jax.random.uniform(key, (num_envs, 2), minval=-1, maxval=1)

    def pd_policy(obs, key):
        return jnp.clip(-3.0 * obs[:, :2] - 3.0 * obs[:, 2:], -1, 1)

    key = jax.random.PRNGKey(1)
    good, bad = episode_return(pd_policy, key), episode_return(random_policy, key)
    assert good > 0.85 * episode_length and bad < 0.4 * episode_length
