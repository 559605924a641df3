"""RPO's policy and V critics as pure functions over parameter dicts (docs/algorithms.md section 11).

Every hidden block is Linear -> LayerNorm -> SiLU (../shared/rpo_spec.md section 4); Linears start
lecun-normal with a zero bias (REPPO's init_linear), LayerNorm at scale 1, bias 0. The policy is a
diagonal Gaussian over the pre-tanh action z; its log std is either one parameter per action dimension
(`state_independent`, the key "log_std") or the second half of the MLP's 2A outputs (`state_dependent`,
whose output bias starts at the initial log std). The C critics are stacked on a leading axis and applied
with vmap; the target critics are a copy with the same layout. The torch twin is on_torch/rpo/networks.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reppo_fast.on_jax.reppo.networks import init_linear, linear

LAYER_NORM_EPS = 1e-5
STD_FORMS = ("state_independent", "state_dependent")


def init_mlp(key, sizes: list[int]) -> dict:
    """sizes [in, hidden..., out]: a block per hidden size, then the output Linear."""
    keys = jax.random.split(key, len(sizes) - 1)
    def norm(size):
        return {"scale": jnp.ones((size,), jnp.float32), "bias": jnp.zeros((size,), jnp.float32)}

    blocks = [{"linear": init_linear(k, fan_in, fan_out), "norm": norm(fan_out)}
              for k, fan_in, fan_out in zip(keys[:-1], sizes[:-2], sizes[1:-1])]
    return {"blocks": blocks, "out": init_linear(keys[-1], sizes[-2], sizes[-1])}


def layer_norm(p: dict, x):
    """(x - mean) / sqrt(var + eps) * scale + bias over the last axis."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + LAYER_NORM_EPS) * p["scale"] + p["bias"]


def mlp(params: dict, x):
    for p in params["blocks"]:
        x = jax.nn.silu(layer_norm(p["norm"], linear(p["linear"], x)))
    return linear(params["out"], x)


def init_actor(key, obs_size: int, action_size: int, hidden: int, hidden_blocks: int, std: str,
               log_std_init: float) -> dict:
    if std not in STD_FORMS:
        raise ValueError(f"rpo_std must be one of {STD_FORMS}, got {std!r}")
    sizes = [obs_size] + [hidden] * hidden_blocks
    if std == "state_independent":
        return {"net": init_mlp(key, sizes + [action_size]),
                "log_std": jnp.full((action_size,), log_std_init, jnp.float32)}
    net = init_mlp(key, sizes + [2 * action_size])
    net["out"]["b"] = net["out"]["b"].at[action_size:].set(log_std_init)
    return {"net": net}


def actor_apply(actor: dict, obs):
    """obs [..., O] -> (pre-tanh mean, log_std), each [..., A]."""
    out = mlp(actor["net"], obs)
    if "log_std" in actor:
        return out, jnp.broadcast_to(actor["log_std"], out.shape)
    return tuple(jnp.split(out, 2, axis=-1))


def init_critics(key, obs_size: int, hidden: int, hidden_blocks: int, num_critics: int) -> dict:
    """{"online": C stacked V MLPs, "target": a copy}."""
    sizes = [obs_size] + [hidden] * hidden_blocks + [1]
    online = jax.vmap(lambda k: init_mlp(k, sizes))(jax.random.split(key, num_critics))
    return {"online": online, "target": jax.tree.map(jnp.copy, online)}


def values(stacked: dict, obs):
    """C stacked critics at obs [..., O] -> V_i(s) [C, ...]."""
    return jax.vmap(lambda p: mlp(p, obs)[..., 0])(stacked)


def value(stacked: dict, obs):
    """The critics' mean V(s) [...]."""
    return jnp.mean(values(stacked, obs), axis=0)
