"""RPO's policy and V critics in PyTorch, mirroring reppo_fast.on_jax.rpo.networks name for name.

Every hidden block is Linear -> LayerNorm (eps 1e-5) -> SiLU; Linears start lecun-normal with a zero bias
(on_torch.reppo.networks.lecun_normal_linear), LayerNorm at scale 1, bias 0. The policy is a diagonal
Gaussian over the pre-tanh action z with a state-independent `log_std` parameter [A] or, state-dependent,
the second half of the MLP's 2A outputs (their output bias starting at the initial log std).

The C critics are stacked on a leading axis (JAX: vmap over stacked params; here batched matmuls over
[C, fan_in, fan_out] weights, the JAX layout itself). `Critics` holds the online critics as parameters and
the target critics as buffers: the critic optimiser and the checkpoint codec's optimiser slots, indexed by
`parameters()`, see the online critics only, while the state_dict carries both. Every Linear (the stacked
ones included) multiplies through `dense` at the run's precision (`--precision`, reppo_fast.precision),
held by the modules from their construction.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from reppo_fast.on_torch.dense import dense
from reppo_fast.on_torch.reppo.networks import TRUNCATED_NORMAL_STD, lecun_normal_linear

LAYER_NORM_EPS = 1e-5
STD_FORMS = ("state_independent", "state_dependent")


class Block(nn.Module):
    """Linear -> LayerNorm -> SiLU."""

    def __init__(self, fan_in: int, fan_out: int, precision: str = "tf32"):
        super().__init__()
        self.linear = lecun_normal_linear(fan_in, fan_out, precision)
        self.norm = nn.LayerNorm(fan_out, eps=LAYER_NORM_EPS)

    def forward(self, x):
        return F.silu(self.norm(self.linear(x)))


class Mlp(nn.Module):
    """sizes [in, hidden..., out]: a block per hidden size, then the output Linear."""

    def __init__(self, sizes: list[int], precision: str = "tf32"):
        super().__init__()
        self.blocks = nn.ModuleList(Block(i, o, precision) for i, o in zip(sizes[:-2], sizes[1:-1]))
        self.out = lecun_normal_linear(sizes[-2], sizes[-1], precision)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.out(x)


class Actor(nn.Module):
    """JAX: {"net": mlp, "log_std": [A]} (`state_independent`) or {"net": mlp with 2A outputs}; under
    `state_dependent` log_std is None (registered, so it is neither a parameter nor in the state_dict)."""

    def __init__(self, obs_size: int, action_size: int, hidden: int, hidden_blocks: int, std: str,
                 log_std_init: float, precision: str = "tf32"):
        super().__init__()
        if std not in STD_FORMS:
            raise ValueError(f"rpo_std must be one of {STD_FORMS}, got {std!r}")
        sizes = [obs_size] + [hidden] * hidden_blocks
        independent = std == "state_independent"
        self.net = Mlp(sizes + [action_size if independent else 2 * action_size], precision)
        log_std = nn.Parameter(torch.full((action_size,), float(log_std_init))) if independent else None
        self.register_parameter("log_std", log_std)
        if not independent:
            with torch.no_grad():
                self.net.out.bias[action_size:] = log_std_init

    def forward(self, obs):
        return actor_apply(self, obs)


def actor_apply(actor: Actor, obs):
    """obs [..., O] -> (pre-tanh mean, log_std), each [..., A]."""
    out = actor.net(obs)
    if actor.log_std is not None:
        return out, actor.log_std.expand_as(out)
    mean, log_std = out.chunk(2, dim=-1)
    return mean, log_std


class StackedMlp(nn.Module):
    """C MLPs with the JAX stacked layout: blocks.<i>.{w [C, in, out], b [C, out], scale [C, out],
    bias [C, out]}, out.{w, b}. Parameters when trainable, else buffers (the target critics)."""

    def __init__(self, tensors: dict[str, torch.Tensor], trainable: bool, precision: str = "tf32"):
        super().__init__()
        self.precision = precision
        self.num_blocks = sum(1 for name in tensors if name.endswith(".w")) - 1
        for name, value in tensors.items():
            key = name.replace(".", "_")
            if trainable:
                self.register_parameter(key, nn.Parameter(value))
            else:
                self.register_buffer(key, value)

    @staticmethod
    def draw(num: int, sizes: list[int]) -> dict[str, torch.Tensor]:
        """Each of the num MLPs drawn as on_jax.rpo.networks.init_mlp draws one (lecun-normal, zero bias)."""
        tensors = {}
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            std = 1.0 / math.sqrt(fan_in) / TRUNCATED_NORMAL_STD
            w = torch.empty(num, fan_in, fan_out)
            nn.init.trunc_normal_(w, 0.0, std, -2.0 * std, 2.0 * std)
            prefix = "out" if i == len(sizes) - 2 else f"blocks.{i}"
            tensors[f"{prefix}.w"], tensors[f"{prefix}.b"] = w, torch.zeros(num, fan_out)
            if prefix != "out":
                tensors[f"{prefix}.scale"] = torch.ones(num, fan_out)
                tensors[f"{prefix}.bias"] = torch.zeros(num, fan_out)
        return tensors

    def tensors(self) -> dict[str, torch.Tensor]:
        """{"blocks.0.w": ..., "out.b": ...} (the JAX names)."""
        names = [f"blocks.{i}.{k}" for i in range(self.num_blocks) for k in ("w", "b", "scale", "bias")]
        return {name: getattr(self, name.replace(".", "_")) for name in names + ["out.w", "out.b"]}

    def forward(self, obs):
        """obs [..., O] -> the C MLPs' outputs [C, ..., out]."""
        t = self.tensors()
        x = obs.reshape(1, -1, obs.shape[-1])
        for i in range(self.num_blocks):
            p = f"blocks.{i}."
            w = t[p + "w"]
            h = dense(x.expand(w.shape[0], -1, -1), w, t[p + "b"].unsqueeze(1), self.precision)
            h = F.layer_norm(h, h.shape[-1:], eps=LAYER_NORM_EPS)
            x = F.silu(h * t[p + "scale"].unsqueeze(1) + t[p + "bias"].unsqueeze(1))
        w = t["out.w"]
        out = dense(x.expand(w.shape[0], -1, -1), w, t["out.b"].unsqueeze(1), self.precision)
        return out.reshape(out.shape[:1] + obs.shape[:-1] + out.shape[-1:])


class Critics(nn.Module):
    """C online V critics (parameters) and their target copy (buffers)."""

    def __init__(self, obs_size: int, hidden: int, hidden_blocks: int, num_critics: int,
                 precision: str = "tf32"):
        super().__init__()
        online = StackedMlp.draw(num_critics, [obs_size] + [hidden] * hidden_blocks + [1])
        self.online = StackedMlp(online, trainable=True, precision=precision)
        self.target = StackedMlp({k: v.clone() for k, v in online.items()}, trainable=False,
                                 precision=precision)


def init_actor(obs_size: int, action_size: int, hidden: int, hidden_blocks: int, std: str,
               log_std_init: float, precision: str = "tf32") -> Actor:
    return Actor(obs_size, action_size, hidden, hidden_blocks, std, log_std_init, precision)


def init_critics(obs_size: int, hidden: int, hidden_blocks: int, num_critics: int,
                 precision: str = "tf32") -> Critics:
    return Critics(obs_size, hidden, hidden_blocks, num_critics, precision)


def values(stacked: StackedMlp, obs):
    """C stacked critics at obs [..., O] -> V_i(s) [C, ...]."""
    return stacked(obs)[..., 0]


def value(stacked: StackedMlp, obs):
    """The critics' mean V(s) [...]."""
    return values(stacked, obs).mean(dim=0)


@torch.no_grad()
def polyak_(critics: Critics, alpha: float) -> None:
    """target <- alpha target + (1 - alpha) online, in place."""
    for target, online in zip(critics.target.tensors().values(), critics.online.tensors().values()):
        target.mul_(alpha).add_(online, alpha=1.0 - alpha)


@torch.no_grad()
def load_jax_params(actor: Actor, jax_actor: dict, critics: Critics, jax_critics: dict) -> None:
    """Copy JAX parameter trees (on_jax.rpo.networks layout) into these modules in place; the actors must
    have the same std form. (JAX `w` is [fan_in, fan_out], nn.Linear's weight its transpose.)"""
    def tensor(x):
        return torch.tensor(np.asarray(x))

    if ("log_std" in jax_actor) != (actor.log_std is not None):
        raise ValueError("the JAX actor and the torch Actor have different rpo_std forms")
    net = jax_actor["net"]
    for block, p in zip(actor.net.blocks, net["blocks"], strict=True):
        block.linear.weight.copy_(tensor(p["linear"]["w"]).T)
        block.linear.bias.copy_(tensor(p["linear"]["b"]))
        block.norm.weight.copy_(tensor(p["norm"]["scale"]))
        block.norm.bias.copy_(tensor(p["norm"]["bias"]))
    actor.net.out.weight.copy_(tensor(net["out"]["w"]).T)
    actor.net.out.bias.copy_(tensor(net["out"]["b"]))
    if actor.log_std is not None:
        actor.log_std.copy_(tensor(jax_actor["log_std"]))
    for module, params in ((critics.online, jax_critics["online"]), (critics.target, jax_critics["target"])):
        for name, dst in module.tensors().items():
            key = name.rsplit(".", 1)[1]
            if name.startswith("out"):
                src = params["out"][key]
            else:
                block = params["blocks"][int(name.split(".")[1])]
                src = block["linear"][key] if key in ("w", "b") else block["norm"][key]
            dst.copy_(tensor(src))
