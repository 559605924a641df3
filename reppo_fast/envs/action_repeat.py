"""Action repeat for a raw single-env JAX env (cfg.action_repeat), with Brax's semantics (brax
EpisodeWrapper): one agent step applies the action for k raw physics steps and sums their rewards,

    reward = r_1 + ... + r_j,   state = s_j,   j = min(k, the first i with done_i)   (raw steps 1..k),

so a raw `done` inside the repeat ends it there: later physics steps neither add reward nor move the state
(Brax keeps stepping a done env and lets its auto-reset discard the rest; the state at the done step is what
the contract needs as the true terminal observation). Time limits are the contract's, in agent steps:
an episode of L raw steps has ceil(L / k) of them (make_env sets max_episode_steps so).

The wrapper has the raw API (reset(key), step(state, action), observation_size, action_size), so
contract_jax.VecEnv takes it like any raw env. Twin: action_repeat_torch.ActionRepeat (same semantics).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp


def with_reward(state: Any, reward: Any) -> Any:
    """`state` with its reward replaced: a NamedTuple (the toy envs) or a dataclass (playground's State)."""
    if hasattr(state, "_replace"):
        return state._replace(reward=reward)
    return dataclasses.replace(state, reward=reward)


class ActionRepeat:
    """Raw env `raw` with every action applied `action_repeat` times (k >= 1; k = 1 is `raw` itself)."""

    def __init__(self, raw: Any, action_repeat: int):
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        self.raw = raw
        self.action_repeat = action_repeat
        self.observation_size = raw.observation_size
        self.action_size = raw.action_size

    def __repr__(self) -> str:
        return f"ActionRepeat({self.raw!r}, action_repeat={self.action_repeat})"

    def reset(self, key: jax.Array) -> Any:
        return self.raw.reset(key)

    def step(self, state: Any, action: jax.Array) -> Any:
        # One traced raw step inside the scan, as Brax does (the env is compiled once, not twice); the
        # carry starts from the incoming state, so reset and step must agree on the state's types, which
        # they do for playground (Brax scans the same way) and the toy envs.
        def repeat(carry, _):
            state, reward, stopped = carry
            nxt = self.raw.step(state, action)
            # Selects, not masks: a held state's later steps may be NaN, and NaN * 0 is NaN.
            reward = jnp.where(stopped, reward, reward + nxt.reward)
            state = jax.tree.map(lambda held, new: jnp.where(stopped, held, new), state, nxt)
            # NaN != 0 too: a blown-up done stops the repeat.
            return (state, reward, stopped | (state.done != 0)), None

        # The first step always runs (the contract never steps an ended episode, and Brax does not check).
        carry = (state, jnp.zeros_like(state.reward, dtype=jnp.float32), jnp.zeros((), bool))
        (state, reward, _), _ = jax.lax.scan(repeat, carry, None, length=self.action_repeat)
        return with_reward(state, reward)
