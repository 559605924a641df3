"""ToyPointMass constants and state containers, shared by the JAX (toy_jax.py) and torch (toy_torch.py) envs.

Framework-free, so both implementations read the same numbers. Dynamics, per env, with position
x in R^A, velocity v in R^A and action a in R^A:

    v' = VELOCITY_DECAY * v + FORCE_GAIN * a
    x' = x + DT * v'
    obs = concat(x', v')                                   [2A]
    reward = 1 - tanh(REWARD_SHARPNESS * |x'|^2)           in [0, 1], 1 at the origin
    done = |x'|_inf > BOUND                                (a real terminal state)
    reset: x ~ U(-INIT_RANGE, INIT_RANGE)^A, v = 0

With nan_above set, a step where any action component exceeds it makes x', v', obs and reward NaN
(a stand-in for MJX physics blowing up, for NaN-injection tests).

A policy that drives to the origin and stays there earns close to 1 per step; a uniform random policy
barely moves from its random start and earns far less (see tests/envs/test_toy.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple

VELOCITY_DECAY = 0.9
FORCE_GAIN = 0.1
DT = 0.1
REWARD_SHARPNESS = 2.0
BOUND = 2.5
INIT_RANGE = 1.0
DEFAULT_ACTION_SIZE = 2
DEFAULT_EPISODE_LENGTH = 100


class ToyData(NamedTuple):
    """Physics state, named like mjx.Data so the contract's qpos/qvel finiteness check applies."""

    qpos: Any  # [A] (JAX, single env) or [N, A] (torch, batched): position x
    qvel: Any  # [A] or [N, A]: velocity v


class ToyState(NamedTuple):
    """Mirrors mujoco_playground's State fields the contract reads (data, obs, reward, done)."""

    data: ToyData
    obs: Any     # [2A] or [N, 2A]: concat(qpos, qvel)
    reward: Any  # [] or [N] float32
    done: Any    # [] or [N] float32, 1.0 when |qpos|_inf > BOUND (MJX uses float done too)
