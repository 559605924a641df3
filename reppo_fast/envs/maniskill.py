"""ManiSkill3 tasks behind the torch env contract (contract_torch.TorchVecEnv):
`make_maniskill_env(name, num_envs=...)`.

Where the envs run:
  CUDA   one process, sim_backend="physx_cuda", all N envs batched on the GPU (ManiSkill's fast path).
  CPU    physx_cpu holds one env per process: N > 1 envs run as N subprocess workers
         (maniskill_workers.py); a single env runs in this process.
Both sit under the same ManiSkillEnv, which owns what the contract fixes and ManiSkill does not:
the time limit (ManiSkill's own TimeLimit wrapper is never applied, since it cannot start episodes at a
random step count), random initial step counters, terminated vs truncated, the TRUE final observation
(ManiSkill is stepped, its outputs read, and only then are the ended envs reset with
env.reset(options={"env_idx": ...})), and non-finite sanitising.

Observations: obs_mode="state" (one flat float vector). Actions: the task's default control mode
(e.g. pd_joint_delta_pos, already normalised to [-1, 1]); other modes are mapped from [-1, 1] to their
bounds. Reward: ManiSkill's default "normalized_dense". Any other ManiSkill argument passes through **kw
(control_mode, reward_mode, robot_uids, sim_config, ...).

A Vulkan device is required even for state observations (SAPIEN creates render materials while loading
a scene): on a machine without a GPU, `source scripts/setup_lavapipe.sh` first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from reppo_fast.envs.contract_torch import EnvStep, TorchVecEnv, apply_contract
from reppo_fast.envs.maniskill_sim import (
    VULKAN_HINT,
    ManiSkillSim,
    NoVulkanError,
    registered_max_episode_steps,
    require_assets,
    vulkan_error,
)
from reppo_fast.envs.names import UnsupportedEnvError, resolve_env

STATE_DICT_UNSUPPORTED = (
    "ManiSkill envs cannot save their state: the physics snapshot ManiSkill exposes (get_state_dict) "
    "omits controller targets and task-internal state (goals, per-episode object choices), so a restore "
    "would not continue the same episodes. A resumed run resets the envs and starts fresh episodes "
    "(with random step counters, as at the start of training)."
)


class ManiSkillEnv(TorchVecEnv):
    """N ManiSkill envs behind the contract. `sim` runs the task: ManiSkillSim (in this process) or
    SubprocessManiSkill (one worker per env); both step, then reset the envs that ended."""

    def __init__(self, sim: Any, *, name: str, max_episode_steps: int, sim_backend: str):
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.sim = sim
        self.name = name
        self.num_envs = int(sim.num_envs)
        self.obs_size = int(sim.obs_size)
        self.action_size = int(sim.action_size)
        self.max_episode_steps = max_episode_steps
        self.device = torch.device(sim.device)
        self.control_mode = sim.control_mode
        self.sim_backend = sim_backend
        self._obs: torch.Tensor | None = None
        self._step_count: torch.Tensor | None = None  # [N] int32 steps taken in the current episode
        # Episode statistics since the last episode_metrics() call, kept on device (no host sync per step).
        self._episodes = torch.zeros((), dtype=torch.int64, device=self.device)
        self._successes = torch.zeros((), dtype=torch.int64, device=self.device)

    def __repr__(self) -> str:
        return (f"ManiSkillEnv({self.name!r}, num_envs={self.num_envs}, obs_size={self.obs_size}, "
                f"action_size={self.action_size}, max_episode_steps={self.max_episode_steps}, "
                f"control_mode={self.control_mode!r}, sim_backend={self.sim_backend!r}, "
                f"device={self.device})")

    def _require_reset(self) -> torch.Tensor:
        if self._obs is None:
            raise RuntimeError(f"{self.name}: call reset(seed) first")
        return self._obs

    @property
    def obs(self) -> torch.Tensor:
        return self._require_reset()

    def reset(self, seed: int, *, random_step_count: bool = True) -> torch.Tensor:
        """Seeded fresh episodes in all N envs (CPU workers: env i gets seed + i); returns obs [N, O]."""
        self._obs = self.sim.reset(seed).to(self.device)
        shape = (self.num_envs,)
        if random_step_count:
            generator = torch.Generator().manual_seed(seed)
            counts = torch.randint(0, self.max_episode_steps, shape, generator=generator, dtype=torch.int32)
            self._step_count = counts.to(self.device)
        else:
            self._step_count = torch.zeros(shape, dtype=torch.int32, device=self.device)
        return self._obs

    def step(self, action: torch.Tensor) -> EnvStep:
        """Step with action [N, A] in [-1, 1] (mapped to the control mode's bounds if they differ)."""
        obs = self._require_reset()
        step_count = self._step_count + 1
        time_up = step_count >= self.max_episode_steps
        raw = self.sim.advance(action, time_up)
        raw = type(raw)(*(x.to(self.device) for x in raw))
        nonfinite = raw.nonfinite  # the sim has already reset a blown-up env
        next_obs, reward, terminated, truncated = apply_contract(
            obs, raw.next_obs, raw.reward, raw.terminated, nonfinite, time_up)
        ended = terminated | truncated
        self._obs = raw.obs
        self._step_count = torch.where(ended, 0, step_count)
        self._episodes += ended.sum()
        self._successes += (ended & raw.success & ~nonfinite).sum()
        return EnvStep(self._obs, next_obs, reward, terminated, truncated, nonfinite)

    def episode_metrics(self) -> dict[str, float]:
        """{"env/success_rate", "env/episodes"} over episodes finished since the last call ({} if none).

        success_rate: the fraction that ended in ManiSkill's success state (success terminates an
        episode, so this is both "success once" and "success at end"). Each env's first episode
        after reset(random_step_count=True) is shortened by its random start count.
        """
        episodes = int(self._episodes.item())
        if episodes == 0:
            return {}
        successes = int(self._successes.item())
        self._episodes.zero_()
        self._successes.zero_()
        return {"env/success_rate": successes / episodes, "env/episodes": float(episodes)}

    def state_dict(self) -> dict[str, np.ndarray]:
        raise NotImplementedError(STATE_DICT_UNSUPPORTED)

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError(STATE_DICT_UNSUPPORTED)

    def close(self) -> None:
        """Release the simulator (and stop the CPU workers). Idempotent."""
        if self.sim is not None:
            self.sim.close()
            self.sim = None
        self._obs = self._step_count = None


def make_maniskill_env(name: str, *, num_envs: int, device: str | torch.device | None = None,
                       episode_length: int | None = None, processes: bool | None = None,
                       start_method: str = "spawn", **kw: Any) -> ManiSkillEnv:
    """Build a ManiSkill3 task (aliases allowed: "PickCube" -> "PickCube-v1") behind the contract.

    device: None -> "cuda" if available, else "cpu". CUDA runs physx_cuda in this process; CPU runs
      physx_cpu, one env per process.
    episode_length: the time limit; default the task's registered max_episode_steps (PickCube-v1: 50),
      exposed as env.max_episode_steps (the trainer sets gamma = 1 - 10 / max_episode_steps).
    processes: CPU only. None -> one worker subprocess per env when num_envs > 1, in this process
      when num_envs == 1; True forces workers (also for one env). start_method: "spawn" or "forkserver".
    kw: passed to ManiSkillSim (obs_limit, its blow-up guard) and on to the ManiSkill task (obs_mode must
      stay "state").
    Raises (before any simulator starts) MissingAssetsError if the task needs an asset pack this
    machine lacks, NoVulkanError without a Vulkan device, UnsupportedEnvError for non-ManiSkill names.
    """
    resolved = resolve_env(name)
    task = resolved.name
    if resolved.suite != "maniskill":
        raise UnsupportedEnvError(f"{task} is not a ManiSkill3 task")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    max_episode_steps = episode_length if episode_length is not None else registered_max_episode_steps(task)
    require_assets(task, kw.get("robot_uids"))
    if (reason := vulkan_error()) is not None:
        raise NoVulkanError(f"{task}: {reason}: {VULKAN_HINT}")
    if device.type == "cuda":
        if processes:
            raise ValueError("processes=True is for physx_cpu; CUDA runs every env in one process")
        sim_backend = "physx_cuda" if device.index is None else f"physx_cuda:{device.index}"
        sim: Any = ManiSkillSim(task, num_envs=num_envs, sim_backend=sim_backend, **kw)
    elif device.type == "cpu":
        sim_backend = "physx_cpu"
        if processes or (processes is None and num_envs > 1):
            from reppo_fast.envs.maniskill_workers import SubprocessManiSkill

            sim = SubprocessManiSkill(task, num_envs=num_envs, start_method=start_method, **kw)
        else:
            if num_envs > 1:
                raise ValueError("physx_cpu holds one env per process: use processes=True (or None) for "
                                 f"num_envs={num_envs}")
            sim = ManiSkillSim(task, num_envs=1, sim_backend=sim_backend, **kw)
    else:
        raise ValueError(f"device must be cpu or cuda, got {device}")
    return ManiSkillEnv(sim, name=task, max_episode_steps=max_episode_steps, sim_backend=sim_backend)
