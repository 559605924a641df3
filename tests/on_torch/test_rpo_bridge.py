"""envs/jax_autograd.py: torch autograd through the JAX VecEnv's step, on ToyPointMass (seconds).

The oracle is jax.grad of the same objective written over VecEnv.step in JAX; the bridge must match it with
and without remat, cut the gradient at an auto-reset, and leave the PlaygroundTorchEnv in the state reached.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reppo_fast.envs import make_env, make_torch_env
from reppo_fast.envs.jax_autograd import DifferentiableJaxEnv
from reppo_fast.envs.playground_torch import PlaygroundTorchEnv

N, T, EPISODE = 3, 6, 4


def _env():
    env = PlaygroundTorchEnv(make_env("ToyPointMass", num_envs=N, episode_length=EPISODE), device="cpu")
    env.reset(0, random_step_count=False)  # every episode ends at step EPISODE - 1: a reset inside the window
    return env


def _actions(env):
    return np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (T, N, env.action_size), minval=-1, maxval=1))


def _objective(steps):
    """J = sum_t (t + 1) sum r_t + 0.1 sum next_obs_t^2 + 0.01 sum obs_t, over either framework's EnvSteps."""
    return sum((t + 1) * out.reward.sum() + 0.1 * (out.next_obs ** 2).sum() + 0.01 * out.obs.sum()
               for t, out in enumerate(steps))


def _jax_window(env, actions, objective):
    """(J, dJ/du, the state reached) in JAX, from the env's state, actions + u at u = 0."""
    vec_env, start = env.vec_env, env.jax_state

    def window(u):
        state, steps = start, []
        for t in range(T):
            state, out = vec_env.step(state, actions[t] + u[t])
            steps.append(out)
        return objective(steps), state

    (value, state), grad = jax.value_and_grad(window, has_aux=True)(jnp.zeros(actions.shape, jnp.float32))
    return float(value), np.asarray(grad), state


def _torch_window(env, actions, objective, remat):
    denv = DifferentiableJaxEnv(env, remat=remat)
    u = torch.zeros(actions.shape, requires_grad=True)
    denv.begin()
    steps = [denv.step(torch.tensor(actions[t]) + u[t]) for t in range(T)]
    denv.end()
    value = objective(steps)
    (grad,) = torch.autograd.grad(value, u)
    return float(value.detach()), grad.numpy()


@pytest.mark.parametrize("remat", [True, False])
def test_gradients_through_the_physics_match_jax(remat):
    env = _env()
    actions = _actions(env)
    value, grad, state = _jax_window(env, actions, _objective)
    t_value, t_grad = _torch_window(env, actions, _objective, remat)
    np.testing.assert_allclose(t_value, value, rtol=1e-6)
    np.testing.assert_allclose(t_grad, grad, rtol=1e-5, atol=1e-7)
    assert np.abs(grad).max() > 0.1
    # end() wrote the reached state back: the same leaves as JAX's chain of steps
    for t, j in zip(jax.tree.leaves(env.jax_state), jax.tree.leaves(state), strict=True):
        np.testing.assert_allclose(np.asarray(t), np.asarray(j), rtol=1e-6)


def test_no_gradient_crosses_an_auto_reset():
    """J = the last step's observation only; the episode restarted after step EPISODE - 1, so the actions up
    to it get no gradient, the later ones do. (obs, next_obs of the other steps are left undifferentiated:
    their cotangents reach JAX as zeros.)"""
    env = _env()
    actions = _actions(env)
    _, grad = _torch_window(env, actions, lambda steps: steps[-1].obs.sum(), remat=True)
    assert np.all(grad[:EPISODE] == 0.0)
    assert np.all(np.abs(grad[EPISODE:]).sum(axis=-1) > 0.0)


def test_only_a_jax_vec_env_can_be_differentiated():
    with pytest.raises(TypeError, match="PlaygroundTorchEnv"):
        DifferentiableJaxEnv(make_torch_env("ToyPointMass", num_envs=N, device="cpu"))
    with pytest.raises(RuntimeError, match="begin"):
        DifferentiableJaxEnv(_env()).step(torch.zeros(N, 2))
