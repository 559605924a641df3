"""PPO policy and value networks in PyTorch, mirroring reppo_fast.on_jax.ppo.networks name for name.

MLPs with swish (SiLU) between layers, LeCun-uniform weights and zero biases; the policy's std is
state-independent, std = softplus(std_param) + MIN_STD (Brax's `scalar` noise).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

MIN_STD = 1e-3
STD_PARAM_INIT = 1.0


def init_mlp(sizes: list[int]) -> nn.ModuleList:
    layers = nn.ModuleList(nn.Linear(fan_in, fan_out) for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))
    with torch.no_grad():
        for layer in layers:
            bound = math.sqrt(3.0 / layer.in_features)  # LeCun uniform
            layer.weight.uniform_(-bound, bound)
            layer.bias.zero_()
    return layers


def mlp(layers: nn.ModuleList, x):
    """swish after every layer but the last."""
    for i, layer in enumerate(layers):
        x = layer(x)
        if i < len(layers) - 1:
            x = F.silu(x)
    return x


class Actor(nn.Module):
    """JAX: {"net": [dense, ...], "std_param": [A]}."""

    def __init__(self, obs_size: int, action_size: int, hidden: int, layers: int):
        super().__init__()
        self.net = init_mlp([obs_size] + [hidden] * layers + [action_size])
        self.std_param = nn.Parameter(torch.full((action_size,), STD_PARAM_INIT))

    def forward(self, obs):
        """obs -> (pre-tanh mean, log_std)."""
        return actor_apply(self, obs)


class Critic(nn.Module):
    def __init__(self, obs_size: int, hidden: int, layers: int):
        super().__init__()
        self.net = init_mlp([obs_size] + [hidden] * layers + [1])

    def forward(self, obs):
        """obs -> V(s)."""
        return critic_apply(self, obs)


def init_actor(obs_size: int, action_size: int, hidden: int, layers: int) -> Actor:
    return Actor(obs_size, action_size, hidden, layers)


def init_critic(obs_size: int, hidden: int, layers: int) -> Critic:
    return Critic(obs_size, hidden, layers)


def actor_apply(actor: Actor, obs):
    """obs [..., O] -> (pre-tanh mean, log_std), each [..., A]."""
    mean = mlp(actor.net, obs)
    log_std = torch.log(F.softplus(actor.std_param) + MIN_STD)
    return mean, log_std.expand_as(mean)


def critic_apply(critic: Critic, obs):
    """obs [..., O] -> V(s) [...]."""
    return mlp(critic.net, obs)[..., 0]


@torch.no_grad()
def load_jax_params(actor: Actor, jax_actor, critic: Critic, jax_critic) -> None:
    """Copy JAX parameter trees (on_jax.ppo.networks layout) into these modules in place."""
    import numpy as np

    for layers, params in ((actor.net, jax_actor["net"]), (critic.net, jax_critic)):
        for layer, p in zip(layers, params, strict=True):
            layer.weight.copy_(torch.tensor(np.asarray(p["w"])).T)
            layer.bias.copy_(torch.tensor(np.asarray(p["b"])))
    actor.std_param.copy_(torch.tensor(np.asarray(jax_actor["std_param"])))
