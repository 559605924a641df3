"""Actor and critic networks as pure functions over parameter dicts (docs/algorithms.md sections 2 and 5).

Parameters are plain nested dicts of arrays so the torch path can mirror them name for name
(`w` is [fan_in, fan_out]). Every hidden block is Linear -> RMSNorm -> SiLU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

RMS_EPS = 1e-6
# The reference initialises the Q head's output bias to 40 * hist(0): softmax then puts almost all
# mass on the bin of value 0, so the untrained critic predicts Q ~ 0 instead of the support's middle.
Q_BIAS_SCALE = 40.0


def init_linear(key, fan_in: int, fan_out: int) -> dict:
    """PyTorch's nn.Linear default: w, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / jnp.sqrt(fan_in)
    kw, kb = jax.random.split(key)
    return {"w": jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound),
            "b": jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)}


def linear(p: dict, x):
    return x @ p["w"] + p["b"]


def init_block(key, fan_in: int, fan_out: int) -> dict:
    return {"linear": init_linear(key, fan_in, fan_out), "scale": jnp.ones((fan_out,), jnp.float32)}


def rms_norm(scale, x):
    """x / sqrt(mean(x^2) + eps) * scale over the last axis."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + RMS_EPS) * scale


def block(p: dict, x):
    return jax.nn.silu(rms_norm(p["scale"], linear(p["linear"], x)))


# --- actor ------------------------------------------------------------------------------------------

def init_actor(key, obs_size: int, action_size: int, hidden: int, layers: int) -> dict:
    keys = jax.random.split(key, layers + 1)
    sizes = [obs_size] + [hidden] * layers
    return {"blocks": [init_block(keys[i], sizes[i], sizes[i + 1]) for i in range(layers)],
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

def init_critic(key, obs_size: int, action_size: int, hidden: int, q_out_bias) -> dict:
    """q_out_bias [K]: initial bias of the Q head's output layer (40 * hist(0))."""
    k = jax.random.split(key, 6)
    num_bins = q_out_bias.shape[-1]
    q_out = init_linear(k[3], hidden, num_bins)
    q_out["b"] = Q_BIAS_SCALE * jnp.asarray(q_out_bias, jnp.float32)
    return {"enc_in": init_block(k[0], obs_size + action_size, hidden),
            "enc_out": init_linear(k[1], hidden, hidden),
            "q_hidden": init_block(k[2], hidden, hidden),
            "q_out": q_out,
            "pred_hidden": init_block(k[4], hidden, hidden),
            "pred_out": init_linear(k[5], hidden, hidden + 1)}


def critic_encode(params: dict, obs, action):
    """concat(obs, action) [..., O+A] -> features z [..., H] (Linear -> RMSNorm -> SiLU -> Linear)."""
    return linear(params["enc_out"], block(params["enc_in"], jnp.concatenate([obs, action], axis=-1)))


def critic_q_logits(params: dict, z):
    """features z [..., H] -> HL-Gauss logits [..., K]."""
    return linear(params["q_out"], block(params["q_hidden"], jax.nn.silu(z)))


def critic_predict(params: dict, z):
    """features z [..., H] -> (predicted next features [..., H], predicted reward [...])."""
    out = linear(params["pred_out"], block(params["pred_hidden"], jax.nn.silu(z)))
    return out[..., :-1], out[..., -1]
