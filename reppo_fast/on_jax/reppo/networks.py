"""Actor and critic networks as pure functions over parameter dicts (docs/algorithms.md sections 2 and 5).

Parameters are plain nested dicts of arrays so the torch path can mirror them name for name
(`w` is [fan_in, fan_out]). Every hidden block is Linear -> RMSNorm -> SiLU; every Linear starts
lecun-normal with a zero bias, every RMSNorm scale at 1 (flax's defaults, what the authors' code gets).
Every Linear multiplies through `dense` at the run's precision (`--precision`, reppo_fast.precision).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reppo_fast.on_jax.dense import dense
from reppo_fast.precision import traced_precision

RMS_EPS = 1e-6
# The Q head adds ZERO_DIST_SCALE * zero_dist to its logits, zero_dist [K] a trainable parameter that starts
# at hist(0): softmax then puts almost all mass on the bin of value 0, so the untrained critic predicts
# Q ~ 0 instead of the support's middle. As its own parameter scaled by 40 in the forward pass, Adam moves
# the offset 40x faster than a bias holding 40 * hist(0) would (the authors' code; section 5).
ZERO_DIST_SCALE = 40.0
_LECUN_NORMAL = jax.nn.initializers.lecun_normal()


def init_linear(key, fan_in: int, fan_out: int) -> dict:
    """flax's Dense default, which the authors' networks get: w lecun-normal (a normal truncated at 2
    std, rescaled so that the std is 1/sqrt(fan_in)), b = 0."""
    return {"w": _LECUN_NORMAL(key, (fan_in, fan_out), jnp.float32), "b": jnp.zeros((fan_out,), jnp.float32)}


def linear(p: dict, x):
    """x [..., I] -> [..., O] at the precision of the function being traced (reppo_fast.precision)."""
    return dense(x, p["w"], p["b"], traced_precision())


def init_block(key, fan_in: int, fan_out: int) -> dict:
    return {"linear": init_linear(key, fan_in, fan_out), "scale": jnp.ones((fan_out,), jnp.float32)}


def rms_norm(scale, x):
    """x / sqrt(mean(x^2) + eps) * scale over the last axis."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + RMS_EPS) * scale


def block(p: dict, x):
    return jax.nn.silu(rms_norm(p["scale"], linear(p["linear"], x)))


# --- actor ------------------------------------------------------------------------------------------

def init_actor(key, obs_size: int, action_size: int, hidden: int, hidden_blocks: int) -> dict:
    """`hidden_blocks` blocks then the output Linear to 2A: the paper's "3 actor layers" (Linear layers,
    the output one included) is hidden_blocks = 2 (section 2)."""
    keys = jax.random.split(key, hidden_blocks + 1)
    sizes = [obs_size] + [hidden] * hidden_blocks
    return {"blocks": [init_block(keys[i], sizes[i], sizes[i + 1]) for i in range(hidden_blocks)],
            "out": init_linear(keys[-1], hidden, 2 * action_size)}


def actor_apply(params: dict, obs, log_std_min=None, log_std_max=None):
    """obs [..., O] -> (mean, log_std), each [..., A]. The reference applies no log_std bound."""
    x = obs
    for p in params["blocks"]:
        x = block(p, x)
    mean, log_std = jnp.split(linear(params["out"], x), 2, axis=-1)
    if log_std_min is not None or log_std_max is not None:
        log_std = jnp.clip(log_std, log_std_min, log_std_max)
    return mean, log_std


# --- critic -----------------------------------------------------------------------------------------

def init_critic(key, obs_size: int, action_size: int, hidden: int, zero_dist) -> dict:
    """zero_dist [K]: the initial value of the logits' offset parameter (hist(0))."""
    k = jax.random.split(key, 6)
    return {"enc_in": init_block(k[0], obs_size + action_size, hidden),
            "enc_out": init_linear(k[1], hidden, hidden),
            "q_hidden": init_block(k[2], hidden, hidden),
            "q_out": init_linear(k[3], hidden, zero_dist.shape[-1]),
            "zero_dist": jnp.asarray(zero_dist, jnp.float32),
            "pred_hidden": init_block(k[4], hidden, hidden),
            "pred_out": init_linear(k[5], hidden, hidden + 1)}


def critic_encode(params: dict, obs, action):
    """concat(obs, action) [..., O+A] -> features z [..., H] (Linear -> RMSNorm -> SiLU -> Linear)."""
    return linear(params["enc_out"], block(params["enc_in"], jnp.concatenate([obs, action], axis=-1)))


def critic_q_logits(params: dict, z):
    """features z [..., H] -> HL-Gauss logits [..., K], offset by ZERO_DIST_SCALE * zero_dist."""
    return (linear(params["q_out"], block(params["q_hidden"], jax.nn.silu(z)))
            + ZERO_DIST_SCALE * params["zero_dist"])


def critic_predict(params: dict, z):
    """features z [..., H] -> (predicted next features [..., H], predicted reward [...])."""
    out = linear(params["pred_out"], block(params["pred_hidden"], jax.nn.silu(z)))
    return out[..., :-1], out[..., -1]
