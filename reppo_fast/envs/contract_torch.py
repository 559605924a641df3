"""The PyTorch-side environment contract (docs/algorithms.md section 1): the JAX contract's semantics and
field names (contract_jax.py), for the torch trainer.

`TorchVecEnv` is the interface every torch-side env implements: BatchedContract (below, for batched raw
torch envs such as ToyPointMassTorch), PlaygroundTorchEnv (playground_torch.py: the JAX VecEnv itself,
driven through DLPack) and the ManiSkill adapter. Unlike the JAX VecEnv, whose state is a pytree threaded
through pure functions, a TorchVecEnv owns its state and `step(action)` advances it.

Tensors an env returns (`obs`, every EnvStep field) are read-only by convention: they may be the env's
own state (BatchedContract keeps `obs` to sanitise the next step) or views of JAX buffers
(PlaygroundTorchEnv). Clone before writing in place.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from reppo_fast.envs.torch_tree import tree_items, tree_map, tree_map_with_path


class EnvStep(NamedTuple):
    """What one batched step returns; the same fields and meaning as contract.EnvStep, on env.device."""

    obs: torch.Tensor         # [N, O] f32 observation for the next action (reset obs where an episode ended)
    next_obs: torch.Tensor    # [N, O] f32 TRUE observation after the action, before auto-reset (sanitised)
    reward: torch.Tensor      # [N] f32 (0 where nonfinite)
    terminated: torch.Tensor  # [N] bool: real terminal state, no bootstrap (raw done, or nonfinite)
    truncated: torch.Tensor   # [N] bool: time limit reached and not terminated: bootstrap from next_obs
    nonfinite: torch.Tensor   # [N] bool: the physics blew up this step: NaN/inf, or an obs beyond obs_limit
    #                           (the caller counts them)


class TorchVecEnv(Protocol):
    """N envs behind the contract, state kept inside; every method body here only documents it."""

    name: str                 # canonical env name (names.resolve_env)
    num_envs: int             # N
    obs_size: int             # O
    action_size: int          # A
    max_episode_steps: int    # time limit; `truncated` fires when an episode's step counter reaches it
    device: torch.device      # where every tensor in and out lives

    @property
    def obs(self) -> torch.Tensor:
        """[N, O] f32 current observation to act on (after any auto-reset)."""
        raise NotImplementedError

    def reset(self, seed: int, *, random_step_count: bool = True) -> torch.Tensor:
        """Fresh episodes in all N envs; returns obs [N, O].

        random_step_count=True starts each env's step counter uniformly in [0, max_episode_steps) so
        episodes stay desynchronised (training); False starts them all at 0 (evaluation).
        """
        raise NotImplementedError

    def step(self, action: torch.Tensor) -> EnvStep:
        """Step all envs with action [N, A] f32 on device (unclipped), then auto-reset ended ones."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to continue bit-for-bit (physics, counters, RNG), as numpy copies.

        Raises NotImplementedError, with the reason, for simulators whose state cannot be saved.
        """
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore a state_dict() of an env built with the same arguments."""
        raise NotImplementedError

    def episode_metrics(self) -> dict[str, float]:
        """Env-specific means over episodes finished since the last call (e.g. "env/success_rate");
        {} when there are none. Returns and lengths are the trainer's business, not the env's."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the simulator; the env is unusable afterwards."""
        raise NotImplementedError


def _nonfinite_rows(x: torch.Tensor) -> torch.Tensor:
    """[N, ...] -> [N] bool: any non-finite entry in the row (reshape, not flatten: rows may be empty)."""
    return ~torch.isfinite(x.reshape(x.shape[0], math.prod(x.shape[1:]))).all(dim=1)


def blown_up_rows(obs: torch.Tensor, limit: float) -> torch.Tensor:
    """[N, ...] -> [N] bool: an entry is non-finite or beyond +-limit (contract_jax.blown_up_rows)."""
    x = obs.reshape(obs.shape[0], math.prod(obs.shape[1:]))
    return ~(torch.isfinite(x) & (x.abs() <= limit)).all(dim=1)


def apply_contract(obs, next_obs, reward, terminated, nonfinite, time_up):
    """The per-step rules every torch env shares (docs/algorithms.md section 1), on [N, ...] tensors.

    A blown-up env's next_obs becomes the obs it acted on and its reward 0, as in the JAX contract
    (`where`, since NaN * 0 is NaN); non-finite physics terminates; a time limit truncates only what did
    not terminate. Returns (next_obs, reward f32, terminated, truncated).
    """
    next_obs = torch.where(nonfinite[:, None], obs, next_obs)
    reward = torch.where(nonfinite, 0.0, reward).to(torch.float32)
    terminated = terminated | nonfinite
    return next_obs, reward, terminated, time_up & ~terminated


def bootstrap_terminations(step: EnvStep) -> EnvStep:
    """Every episode end bootstraps (cfg.bootstrap_terminations); the twin of contract_jax's: a termination
    becomes a truncation, except a non-finite one, whose next_obs is a sanitised placeholder:

        terminated' = terminated & nonfinite        truncated' = truncated | (terminated & ~nonfinite)
    """
    return step._replace(terminated=step.terminated & step.nonfinite,
                         truncated=step.truncated | (step.terminated & ~step.nonfinite))


def select_rows(mask: torch.Tensor, on_true: Any, on_false: Any) -> Any:
    """Per-env select over every leaf of two batched tensor trees; mask [N] bool."""
    def select(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(mask.view(mask.shape + (1,) * (a.ndim - 1)), a, b)
    return tree_map(select, on_true, on_false)


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().copy()


class BatchedContract(TorchVecEnv):
    """A batched raw torch env behind the contract; mirrors contract.VecEnv.step line for line.

    raw: ToyPointMassTorch's API: attributes num_envs, observation_size, action_size, device;
      reset(generator) -> state and step(state, action) -> state, where state is a tree of tensors with
      leading dim N holding obs [N, O], reward [N], done [N] (float, nonzero = terminal) and optionally
      data.qpos / data.qvel (checked for finiteness, as MJX physics can blow up behind a finite obs).
    """

    def __init__(self, raw: Any, *, max_episode_steps: int, name: str, obs_limit: float = math.inf):
        """obs_limit: as contract_jax.VecEnv's."""
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.obs_limit = float(obs_limit)
        self.raw = raw
        self.name = name
        self.num_envs = int(raw.num_envs)
        self.obs_size = int(raw.observation_size)
        self.action_size = int(raw.action_size)
        self.max_episode_steps = max_episode_steps
        self.device = torch.device(raw.device)
        self._raw: Any = None
        self._obs: torch.Tensor | None = None
        self._step_count: torch.Tensor | None = None  # [N] int32 steps taken in the current episode
        self._generator = torch.Generator(device=self.device)  # draws every reset and initial counter

    def __repr__(self) -> str:
        return (f"BatchedContract({self.name!r}, num_envs={self.num_envs}, obs_size={self.obs_size}, "
                f"action_size={self.action_size}, max_episode_steps={self.max_episode_steps}, "
                f"device={self.device})")

    def _require_reset(self) -> torch.Tensor:
        if self._obs is None:
            raise RuntimeError(f"{self.name}: call reset(seed) first")
        return self._obs

    @property
    def obs(self) -> torch.Tensor:
        return self._require_reset()

    def reset(self, seed: int, *, random_step_count: bool = True) -> torch.Tensor:
        self._generator.manual_seed(seed)
        self._raw = self.raw.reset(self._generator)
        self._obs = self._raw.obs
        shape = (self.num_envs,)
        if random_step_count:
            self._step_count = torch.randint(0, self.max_episode_steps, shape, generator=self._generator,
                                             device=self.device, dtype=torch.int32)
        else:
            self._step_count = torch.zeros(shape, dtype=torch.int32, device=self.device)
        return self._obs

    def step(self, action: torch.Tensor) -> EnvStep:
        obs = self._require_reset()
        raw = self.raw.step(self._raw, action)
        nonfinite = blown_up_rows(raw.obs, self.obs_limit) | _nonfinite_rows(raw.reward)
        data = getattr(raw, "data", None)
        for field in ("qpos", "qvel"):
            if hasattr(data, field):
                nonfinite = nonfinite | _nonfinite_rows(getattr(data, field))
        step_count = self._step_count + 1
        next_obs, reward, terminated, truncated = apply_contract(
            obs, raw.obs, raw.reward, raw.done != 0, nonfinite, step_count >= self.max_episode_steps)
        ended = terminated | truncated

        # One batched reset per step whatever ended: a data-dependent branch would need a host sync.
        fresh = self.raw.reset(self._generator)
        self._raw = select_rows(ended, fresh, raw)
        self._obs = torch.where(ended[:, None], fresh.obs, next_obs)
        self._step_count = torch.where(ended, 0, step_count)
        return EnvStep(self._obs, next_obs, reward, terminated, truncated, nonfinite)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Keys: "raw.<path>" per raw-state leaf, "obs", "step_count", "generator" (torch RNG state)."""
        self._require_reset()
        state = {key: _to_numpy(x) for key, x in tree_items(self._raw, "raw").items()}
        state["obs"] = _to_numpy(self._obs)
        state["step_count"] = _to_numpy(self._step_count)
        state["generator"] = _to_numpy(self._generator.get_state())
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        # The raw state's structure comes from a throwaway reset, so our own generator is not consumed.
        template = self.raw.reset(torch.Generator(device=self.device).manual_seed(0))
        expected = set(tree_items(template, "raw")) | {"obs", "step_count", "generator"}
        if set(state) != expected:
            missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(f"{self.name}: state_dict keys: missing {missing}, unexpected {unexpected}")

        def restore(key: str, like: torch.Tensor) -> torch.Tensor:
            value = torch.from_numpy(np.array(state[key]))  # a copy: later edits of `state` cannot leak in
            if value.shape != like.shape or value.dtype != like.dtype:
                raise ValueError(f"{self.name}: {key} is {tuple(value.shape)} {value.dtype}, "
                                 f"expected {tuple(like.shape)} {like.dtype}")
            return value.to(self.device)

        self._raw = tree_map_with_path(lambda path, x: restore(f"raw.{path}", x), template)
        self._obs = restore("obs", template.obs)
        step_count = torch.zeros(self.num_envs, dtype=torch.int32, device=self.device)
        self._step_count = restore("step_count", step_count)
        self._generator.set_state(torch.from_numpy(np.array(state["generator"])))

    def episode_metrics(self) -> dict[str, float]:
        return {}  # the raw envs it wraps report no per-episode info (no success flag)

    def close(self) -> None:
        self._raw = self._obs = self._step_count = None
