"""PPO policy and value networks as pure functions over parameter dicts (Brax's make_ppo_networks).

MLPs with swish between layers, LeCun-uniform weights and zero biases. The policy outputs the pre-tanh
mean; its std is state-independent, std = softplus(std_param) + MIN_STD with std_param starting at 1.0
(Brax's `scalar` noise). The torch path mirrors these names (on_torch.ppo.networks).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MIN_STD = 1e-3
STD_PARAM_INIT = 1.0


def init_dense(key, fan_in: int, fan_out: int) -> dict:
    """LeCun uniform w ~ U(-sqrt(3/fan_in), sqrt(3/fan_in)) [fan_in, fan_out], b = 0."""
    bound = jnp.sqrt(3.0 / fan_in)
    return {"w": jax.random.uniform(key, (fan_in, fan_out), jnp.float32, -bound, bound),
            "b": jnp.zeros((fan_out,), jnp.float32)}


def init_mlp(key, sizes: list[int]) -> list[dict]:
    keys = jax.random.split(key, len(sizes) - 1)
    return [init_dense(k, fan_in, fan_out) for k, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:])]


def mlp(params: list[dict], x):
    """swish after every layer but the last."""
    for i, p in enumerate(params):
        x = x @ p["w"] + p["b"]
        if i < len(params) - 1:
            x = jax.nn.swish(x)
    return x


def init_actor(key, obs_size: int, action_size: int, hidden: int, layers: int) -> dict:
    return {"net": init_mlp(key, [obs_size] + [hidden] * layers + [action_size]),
            "std_param": jnp.full((action_size,), STD_PARAM_INIT, jnp.float32)}


def actor_apply(actor: dict, obs):
    """obs [..., O] -> (pre-tanh mean, log_std), each [..., A]."""
    mean = mlp(actor["net"], obs)
    log_std = jnp.log(jax.nn.softplus(actor["std_param"]) + MIN_STD)
    return mean, jnp.broadcast_to(log_std, mean.shape)


def init_critic(key, obs_size: int, hidden: int, layers: int) -> list[dict]:
    return init_mlp(key, [obs_size] + [hidden] * layers + [1])


def critic_apply(critic: list[dict], obs):
    """obs [..., O] -> V(s) [...]."""
    return mlp(critic, obs)[..., 0]
