"""PPO policy and value networks as pure functions over parameter dicts (docs/algorithms.md section 10).

Brax's make_ppo_networks defaults: MLPs with swish after every hidden layer, LeCun-uniform kernels and zero
biases. The policy is a tanh-Gaussian over the pre-tanh action u with std = softplus(raw) + MIN_STD
(Brax's NormalTanhDistribution, min_std 0.001); `policy_std` (cfg.ppo.policy_std) chooses where raw comes
from:

- `state` (Brax's default, distribution_type='tanh_normal'): the MLP outputs 2A, split into (mean, raw),
  so the std depends on the state (softplus(0) + 0.001 = 0.69 at init where the output is near zero).
  Parameters: {"net": [dense, ...]}.
- `scalar`: the MLP outputs the A means and raw = std_param [A], one learned value per action dimension
  shared by every state, starting at 1.0 (std 1.31). Parameters: {"net": [...], "std_param": [A]}.

The form is read from the parameter tree (a static structure under jit). The torch path mirrors these
names (on_torch.ppo.networks).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reppo_fast.on_jax.dense import dense
from reppo_fast.precision import traced_precision

MIN_STD = 1e-3
STD_PARAM_INIT = 1.0
POLICY_STD_FORMS = ("state", "scalar")


def init_dense(key, fan_in: int, fan_out: int) -> dict:
    """LeCun uniform w ~ U(-sqrt(3/fan_in), sqrt(3/fan_in)) [fan_in, fan_out], b = 0."""
    bound = jnp.sqrt(3.0 / fan_in)
    return {"w": jax.random.uniform(key, (fan_in, fan_out), jnp.float32, -bound, bound),
            "b": jnp.zeros((fan_out,), jnp.float32)}


def init_mlp(key, sizes: list[int]) -> list[dict]:
    keys = jax.random.split(key, len(sizes) - 1)
    return [init_dense(k, fan_in, fan_out) for k, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:])]


def mlp(params: list[dict], x):
    """swish after every layer but the last; every layer multiplies at the traced precision (`dense`)."""
    for i, p in enumerate(params):
        x = dense(x, p["w"], p["b"], traced_precision())
        if i < len(params) - 1:
            x = jax.nn.swish(x)
    return x


def actor_outputs(action_size: int, policy_std: str) -> int:
    """The policy MLP's output width: 2A (mean, raw std) for `state`, A (mean) for `scalar`."""
    if policy_std not in POLICY_STD_FORMS:
        raise ValueError(f"policy_std must be one of {POLICY_STD_FORMS}, got {policy_std!r}")
    return 2 * action_size if policy_std == "state" else action_size


def init_actor(key, obs_size: int, action_size: int, hidden: int, hidden_blocks: int,
               policy_std: str = "state") -> dict:
    """{"net": MLP obs -> [hidden] * hidden_blocks -> 2A or A} (+ "std_param" [A] for `scalar`)."""
    sizes = [obs_size] + [hidden] * hidden_blocks + [actor_outputs(action_size, policy_std)]
    actor = {"net": init_mlp(key, sizes)}
    if policy_std == "scalar":
        actor["std_param"] = jnp.full((action_size,), STD_PARAM_INIT, jnp.float32)
    return actor


def log_std_of(raw):
    """log(softplus(raw) + MIN_STD): finite everywhere, as softplus(raw) >= 0 (it underflows to 0 for very
    negative raw, giving log(MIN_STD)) and softplus(raw) ~ raw for large raw; the gradient
    sigmoid(raw) / (softplus(raw) + MIN_STD) is bounded by 1 / MIN_STD."""
    return jnp.log(jax.nn.softplus(raw) + MIN_STD)


def actor_apply(actor: dict, obs):
    """obs [..., O] -> (pre-tanh mean, log_std), each [..., A]."""
    out = mlp(actor["net"], obs)
    if "std_param" in actor:
        mean, raw = out, actor["std_param"]
    else:
        mean, raw = jnp.split(out, 2, axis=-1)  # Brax's (loc, scale) split of the 2A outputs
    return mean, jnp.broadcast_to(log_std_of(raw), mean.shape)


def init_critic(key, obs_size: int, hidden: int, hidden_blocks: int) -> list[dict]:
    return init_mlp(key, [obs_size] + [hidden] * hidden_blocks + [1])


def critic_apply(critic: list[dict], obs):
    """obs [..., O] -> V(s) [...]."""
    return mlp(critic, obs)[..., 0]
