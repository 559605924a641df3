"""PPO policy and value networks in PyTorch, mirroring reppo_fast.on_jax.ppo.networks name for name
(docs/algorithms.md section 10).

MLPs with swish (SiLU) after every hidden layer, LeCun-uniform weights and zero biases; std =
softplus(raw) + MIN_STD, with raw the second half of the MLP's 2A outputs (`state`, Brax's tanh_normal
default) or std_param [A] (`scalar`, state-independent). See on_jax.ppo.networks for the two forms. Every
layer is a `Dense` holding the run's precision (`--precision`, reppo_fast.precision).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from reppo_fast.on_torch.dense import Dense

MIN_STD = 1e-3
STD_PARAM_INIT = 1.0
POLICY_STD_FORMS = ("state", "scalar")


def init_mlp(sizes: list[int], precision: str = "tf32") -> nn.ModuleList:
    layers = nn.ModuleList(Dense(fan_in, fan_out, precision)
                           for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))
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


def actor_outputs(action_size: int, policy_std: str) -> int:
    """The policy MLP's output width: 2A (mean, raw std) for `state`, A (mean) for `scalar`."""
    if policy_std not in POLICY_STD_FORMS:
        raise ValueError(f"policy_std must be one of {POLICY_STD_FORMS}, got {policy_std!r}")
    return 2 * action_size if policy_std == "state" else action_size


class Actor(nn.Module):
    """JAX: {"net": [dense, ...]} (`state`) or {"net": [dense, ...], "std_param": [A]} (`scalar`); under
    `state` std_param is None (registered, so it is neither a parameter nor in the state_dict)."""

    def __init__(self, obs_size: int, action_size: int, hidden: int, hidden_blocks: int,
                 policy_std: str = "state", precision: str = "tf32"):
        super().__init__()
        self.net = init_mlp([obs_size] + [hidden] * hidden_blocks + [actor_outputs(action_size, policy_std)],
                            precision)
        std_param = torch.full((action_size,), STD_PARAM_INIT) if policy_std == "scalar" else None
        self.register_parameter("std_param", None if std_param is None else nn.Parameter(std_param))

    def forward(self, obs):
        """obs -> (pre-tanh mean, log_std)."""
        return actor_apply(self, obs)


class Critic(nn.Module):
    def __init__(self, obs_size: int, hidden: int, hidden_blocks: int, precision: str = "tf32"):
        super().__init__()
        self.net = init_mlp([obs_size] + [hidden] * hidden_blocks + [1], precision)

    def forward(self, obs):
        """obs -> V(s)."""
        return critic_apply(self, obs)


def init_actor(obs_size: int, action_size: int, hidden: int, hidden_blocks: int,
               policy_std: str = "state", precision: str = "tf32") -> Actor:
    return Actor(obs_size, action_size, hidden, hidden_blocks, policy_std, precision)


def init_critic(obs_size: int, hidden: int, hidden_blocks: int, precision: str = "tf32") -> Critic:
    return Critic(obs_size, hidden, hidden_blocks, precision)


def log_std_of(raw):
    """log(softplus(raw) + MIN_STD), finite everywhere (see on_jax.ppo.networks.log_std_of)."""
    return torch.log(F.softplus(raw) + MIN_STD)


def actor_apply(actor: Actor, obs):
    """obs [..., O] -> (pre-tanh mean, log_std), each [..., A]."""
    out = mlp(actor.net, obs)
    if actor.std_param is not None:
        mean, raw = out, actor.std_param
    else:
        mean, raw = out.chunk(2, dim=-1)  # Brax's (loc, scale) split of the 2A outputs
    return mean, log_std_of(raw).expand_as(mean)


def critic_apply(critic: Critic, obs):
    """obs [..., O] -> V(s) [...]."""
    return mlp(critic.net, obs)[..., 0]


@torch.no_grad()
def load_jax_params(actor: Actor, jax_actor, critic: Critic, jax_critic) -> None:
    """Copy JAX parameter trees (on_jax.ppo.networks layout, either policy_std form) into these modules in
    place; the two must have the same form."""
    import numpy as np

    if ("std_param" in jax_actor) != (actor.std_param is not None):
        raise ValueError("the JAX actor and the torch Actor have different policy_std forms")
    for layers, params in ((actor.net, jax_actor["net"]), (critic.net, jax_critic)):
        for layer, p in zip(layers, params, strict=True):
            layer.weight.copy_(torch.tensor(np.asarray(p["w"])).T)
            layer.bias.copy_(torch.tensor(np.asarray(p["b"])))
    if actor.std_param is not None:
        actor.std_param.copy_(torch.tensor(np.asarray(jax_actor["std_param"])))
