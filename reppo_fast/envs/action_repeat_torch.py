"""Action repeat for a batched raw torch env (cfg.action_repeat): the twin of action_repeat.ActionRepeat, with
the same semantics per env (Brax's): one agent step applies the action for k raw steps and sums their
rewards, and a raw `done` inside the repeat ends that env's repeat there (its state stays at the done step).

The wrapper has the batched raw API contract_torch.BatchedContract takes (num_envs, observation_size,
action_size, device, reset(generator), step(state, action)).
"""

from __future__ import annotations

from typing import Any

import torch

from reppo_fast.envs.contract_torch import select_rows


class ActionRepeat:
    """Batched raw env `raw` with every action applied `action_repeat` times (k >= 1)."""

    def __init__(self, raw: Any, action_repeat: int):
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        self.raw = raw
        self.action_repeat = action_repeat
        self.num_envs = raw.num_envs
        self.observation_size = raw.observation_size
        self.action_size = raw.action_size
        self.device = raw.device

    def __repr__(self) -> str:
        return f"ActionRepeat({self.raw!r}, action_repeat={self.action_repeat})"

    def reset(self, generator: torch.Generator | None = None, **kw: Any) -> Any:
        return self.raw.reset(generator, **kw)

    def step(self, state: Any, action: torch.Tensor) -> Any:
        reward = torch.zeros(self.num_envs, dtype=torch.float32, device=self.device)
        stopped = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        # Every env steps k times (a batch has no per-env early exit); the ones already done keep their
        # state and reward by select, not mask: their later steps may be NaN, and NaN * 0 is NaN.
        for _ in range(self.action_repeat):
            nxt = self.raw.step(state, action)
            reward = torch.where(stopped, reward, reward + nxt.reward)
            state = select_rows(stopped, state, nxt)
            stopped = stopped | (state.done != 0)  # NaN != 0 too: a blown-up done stops the repeat
        return state._replace(reward=reward)  # torch raw states are NamedTuple trees (torch_tree.py)
