"""Action repeat (envs/action_repeat.py, action_repeat_torch.py): one agent step is k raw steps with their
rewards summed, a raw done inside the repeat stops it there, and the time limit is ceil(L / k) agent steps."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reppo_fast.envs import UnsupportedEnvError, make_env, make_torch_env
from reppo_fast.envs.action_repeat import ActionRepeat
from reppo_fast.envs.action_repeat_torch import ActionRepeat as ActionRepeatTorch
from reppo_fast.envs.toy_jax import ToyPointMass
from reppo_fast.envs.toy_torch import ToyPointMassTorch

K = 3


def test_jax_toy_step_is_k_raw_steps():
    raw = ToyPointMass()
    env = ActionRepeat(raw, K)
    assert (env.observation_size, env.action_size) == (raw.observation_size, raw.action_size)
    state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 8))
    action = jax.random.uniform(jax.random.PRNGKey(1), (8, 2), minval=-1, maxval=1)
    out = jax.jit(jax.vmap(env.step))(state, action)
    by_hand, reward = state, 0.0
    for _ in range(K):
        by_hand = jax.vmap(raw.step)(by_hand, action)
        reward = reward + by_hand.reward
    assert not np.asarray(by_hand.done).any()
    np.testing.assert_allclose(out.obs, by_hand.obs, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out.reward, reward, rtol=1e-6)
    np.testing.assert_array_equal(out.done, by_hand.done)


def test_torch_toy_step_is_k_raw_steps():
    raw = ToyPointMassTorch(8)
    env = ActionRepeatTorch(raw, K)
    state = env.reset(torch.Generator().manual_seed(0))
    action = torch.rand((8, 2), generator=torch.Generator().manual_seed(1)) * 2 - 1
    out = env.step(state, action)
    by_hand, reward = state, torch.zeros(8)
    for _ in range(K):
        by_hand = raw.step(by_hand, action)
        reward = reward + by_hand.reward
    assert not by_hand.done.any()
    torch.testing.assert_close(out.obs, by_hand.obs)
    torch.testing.assert_close(out.reward, reward)
    torch.testing.assert_close(out.done, by_hand.done)


def test_jax_and_torch_repeat_match_through_dones_and_nan():
    num_envs, nan_above = 8, 1.5
    env_jax = ActionRepeat(ToyPointMass(nan_above=nan_above), K)
    env_torch = ActionRepeatTorch(ToyPointMassTorch(num_envs, nan_above=nan_above), K)
    state_jax = jax.vmap(env_jax.reset)(jax.random.split(jax.random.PRNGKey(0), num_envs))
    state_torch = env_torch.reset(qpos=torch.from_numpy(np.array(state_jax.data.qpos)))
    # Hard pushes so envs leave the bound mid-repeat (done), one action above nan_above (NaN).
    actions = np.full((40, num_envs, 2), 1.4, np.float32)
    actions[5, 3, 0] = 2.0
    step_jax = jax.jit(jax.vmap(env_jax.step))
    for action in actions:
        state_jax = step_jax(state_jax, jnp.asarray(action))
        state_torch = env_torch.step(state_torch, torch.from_numpy(action))
        leaves_torch = [state_torch.data.qpos, state_torch.data.qvel, state_torch.obs, state_torch.reward,
                        state_torch.done]
        for leaf_jax, leaf_torch in zip(jax.tree.leaves(state_jax), leaves_torch):
            np.testing.assert_allclose(np.asarray(leaf_jax), leaf_torch.numpy(), rtol=1e-5, atol=1e-6)
    # The toy's own done misses NaN (the contract's finiteness check catches it); every other env left.
    np.testing.assert_array_equal(state_jax.done, np.arange(num_envs) != 3)
    assert np.isnan(np.asarray(state_jax.obs)[3]).all()


class Counter(NamedTuple):
    count: jax.Array | torch.Tensor
    obs: jax.Array | torch.Tensor
    reward: jax.Array | torch.Tensor
    done: jax.Array | torch.Tensor


DONE_AT = 2  # the Counter env ends on its 2nd step


class CounterJax:
    """Raw step i (from 1) gives reward 10^(i-1) and obs [i], done at step DONE_AT; past it obs, reward and
    count turn NaN, so anything read from beyond the done step shows."""

    observation_size, action_size = 1, 1

    def reset(self, key):
        return Counter(jnp.zeros(()), jnp.zeros((1,)), jnp.zeros(()), jnp.zeros(()))

    def step(self, state, action):
        count = state.count + 1
        count = jnp.where(count > DONE_AT, jnp.nan, count)
        return Counter(count, count[None], 10.0 ** (count - 1), (count >= DONE_AT).astype(jnp.float32))


class CounterTorch:
    """CounterJax, batched over num_envs in torch."""

    observation_size, action_size, device = 1, 1, torch.device("cpu")

    def __init__(self, num_envs):
        self.num_envs = num_envs

    def reset(self, generator=None):
        zeros = torch.zeros(self.num_envs)
        return Counter(zeros, zeros[:, None], zeros, zeros)

    def step(self, state, action):
        count = state.count + 1
        count = torch.where(count > DONE_AT, torch.nan, count)
        return Counter(count, count[:, None], 10.0 ** (count - 1), (count >= DONE_AT).float())


def test_a_raw_done_inside_the_repeat_stops_there_jax():
    env = ActionRepeat(CounterJax(), 4)
    state = jax.jit(env.step)(env.reset(None), jnp.zeros((1,)))
    assert (float(state.reward), float(state.done), float(state.obs[0])) == (1.0 + 10.0, 1.0, DONE_AT)


def test_a_raw_done_inside_the_repeat_stops_there_torch():
    env = ActionRepeatTorch(CounterTorch(2), 4)
    state = env.step(env.reset(), torch.zeros((2, 1)))
    torch.testing.assert_close(state.reward, torch.full((2,), 11.0))
    torch.testing.assert_close(state.done, torch.ones(2))
    torch.testing.assert_close(state.obs, torch.full((2, 1), float(DONE_AT)))


@pytest.mark.parametrize(("episode_length", "k", "agent_steps"), [(10, 3, 4), (9, 3, 3), (100, 1, 100)])
def test_time_limit_is_ceil_of_physics_steps_over_k(episode_length, k, agent_steps):
    env = make_env("ToyPointMass", num_envs=2, episode_length=episode_length, action_repeat=k)
    torch_env = make_torch_env("ToyPointMass", num_envs=2, device="cpu", episode_length=episode_length,
                               action_repeat=k)
    assert env.max_episode_steps == torch_env.max_episode_steps == agent_steps
    state = env.reset(jax.random.PRNGKey(0), random_step_count=False)
    torch_env.reset(0, random_step_count=False)
    step = jax.jit(env.step)
    zero = jnp.zeros((2, 2))  # the point mass starts at rest and stays: only the time limit ends it
    for t in range(agent_steps):
        state, out = step(state, zero)
        torch_out = torch_env.step(torch.zeros((2, 2)))
        np.testing.assert_array_equal(out.truncated, t == agent_steps - 1)
        np.testing.assert_array_equal(torch_out.truncated.numpy(), t == agent_steps - 1)


def test_maniskill_refuses_action_repeat():
    with pytest.raises(UnsupportedEnvError, match="use --action-repeat 1"):
        make_torch_env("PickCube", num_envs=1, device="cpu", action_repeat=2)


def test_playground_refuses_a_task_config_repeat(monkeypatch):
    from ml_collections import config_dict

    from reppo_fast.envs import playground_jax

    class Registry:
        def get_default_config(self, name):
            return config_dict.create(action_repeat=2, episode_length=1000)

    monkeypatch.setattr(playground_jax, "_registry", Registry)
    with pytest.raises(ValueError, match="set --action-repeat 2 instead"):
        playground_jax.load_playground("CartpoleBalance", num_envs=1)


def test_playground_cartpole_step_is_k_raw_steps():
    pytest.importorskip("mujoco_playground")
    env = make_env("CartpoleBalance", num_envs=2, action_repeat=K)
    assert env.max_episode_steps == 334  # ceil(1000 / 3)
    wrapped, raw = env.raw, env.raw.raw  # the VecEnv steps the wrapper like any raw env; jit costs ~10 s each
    state = jax.jit(jax.vmap(wrapped.reset))(jax.random.split(jax.random.PRNGKey(0), 2))
    action = jnp.array([[0.7], [-0.4]])
    out = jax.jit(jax.vmap(wrapped.step))(state, action)
    raw_step = jax.jit(jax.vmap(raw.step))
    by_hand, reward = state, 0.0
    for _ in range(K):
        by_hand = raw_step(by_hand, action)
        reward = reward + by_hand.reward
    assert not np.asarray(by_hand.done).any() and not np.asarray(out.done).any()
    np.testing.assert_allclose(out.obs, by_hand.obs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.data.qpos, by_hand.data.qpos, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.reward, reward, rtol=1e-5)
