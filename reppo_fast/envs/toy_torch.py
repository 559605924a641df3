"""ToyPointMass in torch: a batched raw env with the same dynamics as toy_jax.py (see toy_common.py).

All tensors are batched over N envs: qpos/qvel [N, A], obs [N, 2A], reward/done [N]. No time limit
or auto-reset here; that belongs to the torch path's env contract.
"""

from __future__ import annotations

import torch

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


def toy_dynamics(qpos: torch.Tensor, qvel: torch.Tensor, action: torch.Tensor,
                 nan_above: float | None = None) -> ToyState:
    """One step from (qpos [..., A], qvel [..., A]) under action [..., A]; mirrors toy.toy_dynamics."""
    qvel = VELOCITY_DECAY * qvel + FORCE_GAIN * action
    qpos = qpos + DT * qvel
    if nan_above is not None:
        blown_up = torch.any(action > nan_above, dim=-1, keepdim=True)
        qpos = torch.where(blown_up, torch.nan, qpos)
        qvel = torch.where(blown_up, torch.nan, qvel)
    return _state(qpos, qvel)


def _state(qpos: torch.Tensor, qvel: torch.Tensor) -> ToyState:
    reward = 1.0 - torch.tanh(REWARD_SHARPNESS * torch.sum(qpos**2, dim=-1))
    done = (torch.amax(torch.abs(qpos), dim=-1) > BOUND).to(torch.float32)
    return ToyState(ToyData(qpos, qvel), torch.cat([qpos, qvel], dim=-1), reward, done)


class ToyPointMassTorch:
    """Batched ToyPointMass over num_envs envs on `device`."""

    def __init__(self, num_envs: int, *, action_size: int = DEFAULT_ACTION_SIZE,
                 nan_above: float | None = None, device: str | torch.device = "cpu"):
        self.num_envs = num_envs
        self.action_size = action_size
        self.observation_size = 2 * action_size
        self.nan_above = nan_above
        self.device = torch.device(device)

    def reset(self, generator: torch.Generator | None = None, *,
              qpos: torch.Tensor | None = None) -> ToyState:
        """Random start positions from `generator`, or the given qpos [N, A] (e.g. copied from JAX)."""
        if qpos is None:
            shape = (self.num_envs, self.action_size)
            unit = torch.rand(shape, generator=generator, device=self.device)
            qpos = (2.0 * unit - 1.0) * INIT_RANGE
        qpos = torch.as_tensor(qpos, dtype=torch.float32, device=self.device)
        return _state(qpos, torch.zeros_like(qpos))

    def step(self, state: ToyState, action: torch.Tensor) -> ToyState:
        return toy_dynamics(state.data.qpos, state.data.qvel, action, self.nan_above)
