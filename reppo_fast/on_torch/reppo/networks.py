"""Actor and critic networks in PyTorch, mirroring reppo_fast.on_jax.reppo.networks name for name.

The JAX params `{"blocks": [...], "out": ...}` map to these modules' attributes; `load_jax_params` copies
a JAX parameter tree in (JAX `w` is [fan_in, fan_out], nn.Linear's weight its transpose). Every hidden
block is Linear -> RMSNorm -> SiLU; every Linear starts lecun-normal with a zero bias, as on the JAX side
(flax's default, not nn.Linear's uniform one). Every Linear is a `Dense` holding the run's precision
(`--precision`, reppo_fast.precision), given to the constructors: JAX reads it from the traced context.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from reppo_fast.on_torch.dense import Dense

RMS_EPS = 1e-6
ZERO_DIST_SCALE = 40.0  # logits += 40 * zero_dist, zero_dist starting at hist(0): the untrained Q is ~ 0
# jax.nn.initializers.lecun_normal: a standard normal truncated to [-2, 2] has std 0.8796..., so the
# samples are divided by it to make the std exactly 1/sqrt(fan_in).
TRUNCATED_NORMAL_STD = 0.87962566103423978


def lecun_normal_linear(fan_in: int, fan_out: int, precision: str = "tf32") -> Dense:
    """A Dense (nn.Linear at `precision`) with flax's init: w lecun-normal (truncated at 2 std), b = 0."""
    linear = Dense(fan_in, fan_out, precision)
    std = 1.0 / math.sqrt(fan_in) / TRUNCATED_NORMAL_STD
    with torch.no_grad():
        nn.init.trunc_normal_(linear.weight, 0.0, std, -2.0 * std, 2.0 * std)
        linear.bias.zero_()
    return linear


class Block(nn.Module):
    """Linear -> RMSNorm (learned scale) -> SiLU."""

    def __init__(self, fan_in: int, fan_out: int, precision: str = "tf32"):
        super().__init__()
        self.linear = lecun_normal_linear(fan_in, fan_out, precision)
        self.scale = nn.Parameter(torch.ones(fan_out))

    def forward(self, x):
        return F.silu(rms_norm(self.scale, self.linear(x)))


def rms_norm(scale, x):
    """x / sqrt(mean(x^2) + eps) * scale over the last axis."""
    return x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + RMS_EPS) * scale


class ActorNet(nn.Module):
    """obs [..., O] -> (mean, log_std), each [..., A]."""

    def __init__(self, obs_size: int, action_size: int, hidden: int, hidden_blocks: int,
                 precision: str = "tf32"):
        super().__init__()
        sizes = [obs_size] + [hidden] * hidden_blocks
        self.blocks = nn.ModuleList(Block(sizes[i], sizes[i + 1], precision) for i in range(hidden_blocks))
        self.out = lecun_normal_linear(hidden, 2 * action_size, precision)

    def forward(self, obs):
        return actor_apply(self, obs)


class Actor(nn.Module):
    """The policy network plus the two Lagrange multipliers it trains (JAX: {"net", "log_alpha",
    "log_beta"}); actor(obs) -> (mean, log_std)."""

    def __init__(self, net: ActorNet, alpha_init: float, beta_init: float):
        super().__init__()
        self.net = net
        self.log_alpha = nn.Parameter(torch.tensor(float(alpha_init)).log())
        self.log_beta = nn.Parameter(torch.tensor(float(beta_init)).log())

    def forward(self, obs):
        return self.net(obs)


class Critic(nn.Module):
    """HL-Gauss Q critic with the self-predictive head (docs/algorithms.md section 5)."""

    def __init__(self, obs_size: int, action_size: int, hidden: int, zero_dist: torch.Tensor,
                 precision: str = "tf32"):
        super().__init__()
        self.enc_in = Block(obs_size + action_size, hidden, precision)
        self.enc_out = lecun_normal_linear(hidden, hidden, precision)
        self.q_hidden = Block(hidden, hidden, precision)
        self.q_out = lecun_normal_linear(hidden, zero_dist.shape[-1], precision)
        self.zero_dist = nn.Parameter(zero_dist.detach().clone().float())
        self.pred_hidden = Block(hidden, hidden, precision)
        self.pred_out = lecun_normal_linear(hidden, hidden + 1, precision)

    def forward(self, obs, action):
        """(HL-Gauss logits [..., K], features z [..., H]) at (obs, action)."""
        z = critic_encode(self, obs, action)
        return critic_q_logits(self, z), z


def init_actor(obs_size: int, action_size: int, hidden: int, hidden_blocks: int, alpha_init: float,
               beta_init: float, precision: str = "tf32") -> Actor:
    return Actor(ActorNet(obs_size, action_size, hidden, hidden_blocks, precision), alpha_init, beta_init)


def init_critic(obs_size: int, action_size: int, hidden: int, zero_dist: torch.Tensor,
                precision: str = "tf32") -> Critic:
    return Critic(obs_size, action_size, hidden, zero_dist, precision)


def actor_apply(net: ActorNet, obs, log_std_min=None, log_std_max=None):
    """obs [..., O] -> (mean, log_std), each [..., A]. The reference applies no log_std bound."""
    x = obs
    for block in net.blocks:
        x = block(x)
    mean, log_std = net.out(x).chunk(2, dim=-1)
    if log_std_min is not None or log_std_max is not None:
        log_std = log_std.clamp(log_std_min, log_std_max)
    return mean, log_std


def critic_encode(critic: Critic, obs, action):
    """concat(obs, action) [..., O+A] -> features z [..., H]."""
    return critic.enc_out(critic.enc_in(torch.cat([obs, action], dim=-1)))


def critic_q_logits(critic: Critic, z):
    """features z [..., H] -> HL-Gauss logits [..., K], offset by ZERO_DIST_SCALE * zero_dist."""
    return critic.q_out(critic.q_hidden(F.silu(z))) + ZERO_DIST_SCALE * critic.zero_dist


def critic_predict(critic: Critic, z):
    """features z [..., H] -> (predicted next features [..., H], predicted reward [...])."""
    out = critic.pred_out(critic.pred_hidden(F.silu(z)))
    return out[..., :-1], out[..., -1]


# --- parity with the JAX path -----------------------------------------------------------------------

def _copy_linear(linear: nn.Linear, p) -> None:
    linear.weight.copy_(torch.as_tensor(_np(p["w"])).T)
    linear.bias.copy_(torch.as_tensor(_np(p["b"])))


def _copy_block(block: Block, p) -> None:
    _copy_linear(block.linear, p["linear"])
    block.scale.copy_(torch.as_tensor(_np(p["scale"])))


def _np(x):
    import numpy as np

    return np.array(x)  # a writable copy: torch warns on (and must not alias) read-only JAX buffers


@torch.no_grad()
def load_jax_params(actor: Actor | None = None, jax_actor=None, critic: Critic | None = None,
                    jax_critic=None) -> None:
    """Copy JAX parameter trees (reppo_fast.on_jax.reppo.networks layout) into these modules in place."""
    if actor is not None:
        for block, p in zip(actor.net.blocks, jax_actor["net"]["blocks"], strict=True):
            _copy_block(block, p)
        _copy_linear(actor.net.out, jax_actor["net"]["out"])
        actor.log_alpha.copy_(torch.as_tensor(_np(jax_actor["log_alpha"])))
        actor.log_beta.copy_(torch.as_tensor(_np(jax_actor["log_beta"])))
    if critic is not None:
        for name in ("enc_in", "q_hidden", "pred_hidden"):
            _copy_block(getattr(critic, name), jax_critic[name])
        for name in ("enc_out", "q_out", "pred_out"):
            _copy_linear(getattr(critic, name), jax_critic[name])
        critic.zero_dist.copy_(torch.as_tensor(_np(jax_critic["zero_dist"])))
