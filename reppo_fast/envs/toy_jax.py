"""ToyPointMass in JAX: a single-env raw env with mujoco_playground's API (reset(key), step(state, a)).

Wrap it in contract.VecEnv for batching, time limits and auto-reset. Dynamics: see toy_common.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reppo_fast.envs.toy_common import (
    BOUND,
    DEFAULT_ACTION_SIZE,
    DT,
    FORCE_GAIN,
    INIT_RANGE,
    REWARD_SHARPNESS,
    VELOCITY_DECAY,
    ToyData,
    ToyState,
)


def toy_dynamics(qpos: jax.Array, qvel: jax.Array, action: jax.Array,
                 nan_above: float | None = None) -> ToyState:
    """One step from (qpos [..., A], qvel [..., A]) under action [..., A]; leading dims broadcast."""
    qvel = VELOCITY_DECAY * qvel + FORCE_GAIN * action
    qpos = qpos + DT * qvel
    if nan_above is not None:
        blown_up = jnp.any(action > nan_above, axis=-1, keepdims=True)
        qpos = jnp.where(blown_up, jnp.nan, qpos)
        qvel = jnp.where(blown_up, jnp.nan, qvel)
    return _state(qpos, qvel)


def _state(qpos: jax.Array, qvel: jax.Array) -> ToyState:
    reward = 1.0 - jnp.tanh(REWARD_SHARPNESS * jnp.sum(qpos**2, axis=-1))
    # NaN > BOUND is False, so a blown-up state is not `done` here: the contract's finiteness check
    # is what catches it, as for MJX envs whose own done misses NaN.
    done = (jnp.max(jnp.abs(qpos), axis=-1) > BOUND).astype(jnp.float32)
    obs = jnp.concatenate([qpos, qvel], axis=-1)
    return ToyState(ToyData(qpos, qvel), obs, reward.astype(jnp.float32), done)


class ToyPointMass:
    """Raw single-env ToyPointMass: obs [2A], action [A] (actions are not clipped here)."""

    def __init__(self, *, action_size: int = DEFAULT_ACTION_SIZE, nan_above: float | None = None):
        self.action_size = action_size
        self.observation_size = 2 * action_size
        self.nan_above = nan_above

    def reset(self, key: jax.Array) -> ToyState:
        qpos = jax.random.uniform(key, (self.action_size,), minval=-INIT_RANGE, maxval=INIT_RANGE)
        return _state(qpos, jnp.zeros_like(qpos))

    def step(self, state: ToyState, action: jax.Array) -> ToyState:
        return toy_dynamics(state.data.qpos, state.data.qvel, action, self.nan_above)
