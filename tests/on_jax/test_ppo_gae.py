"""GAE through the lambda_returns op equals the brute-force sum of discounted TD residuals."""


import jax
import numpy as np
import pytest
import torch

from reppo_fast.config import Config
from reppo_fast.kernels import bind
from reppo_fast.on_jax import ppo as jr
from reppo_fast.on_torch import ppo as tr

T, N = 23, 7
CFG = Config().replace(algo="ppo", gamma=0.97, lmbda=0.9, reward_scaling=3.0)


def brute_force_gae(reward, value, next_value, terminated, truncated, gamma, lmbda):
    """A_t = sum_k (gamma lmbda)^k delta_{t+k}, delta = r + gamma (1 - term) V(s') - V(s), summed up to and
    including the first step that ends the episode (terminated or truncated) or the rollout."""
    delta = reward + gamma * np.where(terminated, 0.0, next_value) - value
    adv = np.zeros_like(reward)
    for n in range(reward.shape[1]):
        for t in range(reward.shape[0]):
            coef = 1.0
            for k in range(t, reward.shape[0]):
                adv[t, n] += coef * delta[k, n]
                if terminated[k, n] or truncated[k, n]:
                    break
                coef *= gamma * lmbda
    return adv


def _rollout(seed):
    """A consistent rollout: V(s_{t+1}) is the next step's V(s_t) unless step t ended the episode (the
    next step then starts a new one, and V(s_{t+1}) is the value of the final observation)."""
    rng = np.random.default_rng(seed)
    reward, value, final_value = (rng.normal(size=(T, N)) for _ in range(3))
    terminated = rng.random((T, N)) < 0.1
    truncated = (rng.random((T, N)) < 0.1) & ~terminated
    next_value = np.concatenate([value[1:], final_value[-1:]])
    next_value = np.where(terminated | truncated, final_value, next_value)
    return reward, value, next_value, terminated, truncated


def _transition(cls, convert, reward, value, next_value, terminated, truncated):
    zeros = np.zeros((T, N, 1), np.float32)
    f32 = lambda x: convert(np.asarray(x, np.float32))  # noqa: E731
    return cls(f32(zeros), f32(zeros), f32(zeros[..., 0]), f32(value), f32(reward), convert(terminated),
               convert(truncated), f32(next_value))


@pytest.mark.parametrize("framework", ["jax", "torch"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_from_the_op_equals_brute_force(framework, seed):
    reward, value, next_value, terminated, truncated = _rollout(seed)
    expected = brute_force_gae(CFG.ppo.reward_scaling * reward, value, next_value, terminated, truncated,
                               CFG.gamma, CFG.lmbda)
    if framework == "jax":
        data = _transition(jr.PpoTransition, jax.numpy.asarray, reward, value, next_value, terminated,
                           truncated)
        returns, adv = jr.targets(data, bind("jax", "reference"), CFG)
    else:
        data = _transition(tr.PpoTransition, torch.as_tensor, reward, value, next_value, terminated,
                           truncated)
        returns, adv = tr.targets(data, bind("torch", "reference"), CFG)
    np.testing.assert_allclose(np.asarray(adv), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(returns), expected + value, rtol=1e-5, atol=1e-5)
