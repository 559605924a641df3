"""mujoco_playground for the torch trainer: the JAX VecEnv (contract_jax.py) driven from torch through DLPack.

PlaygroundTorchEnv IS the JAX VecEnv: it keeps the JAX EnvState inside and calls the same jitted
`reset` and `step`, so its numbers equal the JAX path's for the same key and actions. Only the arrays
crossing the boundary change hands, zero-copy (checked in tests/envs/test_playground_torch.py):
  torch -> JAX  action [N, A] f32: jax.dlpack.from_dlpack aliases a torch buffer (torch_to_jax; JAX
                refuses strided views); step() hands it a private copy of the action (see step()).
  JAX -> torch  obs and every EnvStep field: torch.from_dlpack aliases the JAX output buffers.
Aliasing rules this relies on:
  - JAX buffers are immutable to XLA, so the torch views are read-only by convention (the contract's
    rule anyway): `obs` aliases EnvState.obs, which the next step reads to sanitise blown-up envs.
  - Nothing is donated to `step`: a donated buffer would be recycled for the next step's outputs while
    torch may still read it through an earlier EnvStep. The price is a second state-sized allocation
    while a step runs (the old state is freed when it is replaced).
  - Ordering: __dlpack__ synchronises producer and consumer (on CPU, torch.from_dlpack blocks until
    JAX's output is ready, so step() is synchronous there; on CUDA, torch.from_dlpack passes torch's
    current stream and JAX makes it wait for the buffer's definition event, and jax.dlpack.from_dlpack
    passes JAX's stream and torch records an event on its own stream for it to wait on), so each side
    reads finished data. JAX reads a private copy of the action, held until the next step (see step()),
    so the caller may overwrite its action tensor once step() returns. A DLPack capsule keeps its source
    alive, so views outlive later steps.
On CUDA, JAX preallocates 75% of GPU memory by default; set XLA_PYTHON_CLIENT_PREALLOCATE=false (or
XLA_PYTHON_CLIENT_MEM_FRACTION) before jax is imported so torch has room too.
"""

from __future__ import annotations

import os
import warnings

import jax
import numpy as np
import torch

from reppo_fast.envs.contract_jax import EnvState, VecEnv
from reppo_fast.envs.contract_torch import EnvStep, TorchVecEnv


def torch_to_jax(x: torch.Tensor) -> jax.Array:
    """Zero-copy view of a torch tensor as a JAX array (a copy only if x is not contiguous)."""
    return jax.dlpack.from_dlpack(x.detach().contiguous())


def jax_to_torch(x: jax.Array) -> torch.Tensor:
    """Zero-copy torch view of a single-device JAX array; read-only by convention."""
    return torch.from_dlpack(x)


def resolve_device(device: str | torch.device | None) -> tuple[torch.device, jax.Device]:
    """The torch device and the JAX device that shares its memory.

    None: CUDA if JAX's default backend is the GPU and torch sees CUDA, else CPU. An explicit CUDA
    device needs a CUDA jaxlib too (jax[cuda12]); we raise rather than fall back to the CPU.
    """
    if device is None:
        on_gpu = jax.default_backend() == "gpu" and torch.cuda.is_available()
        device = "cuda" if on_gpu else "cpu"
    device = torch.device(device)
    if device.type == "cpu":
        return device, jax.devices("cpu")[0]
    if device.type != "cuda":
        raise ValueError(f"unsupported device {device} (cpu or cuda)")
    try:
        gpus = jax.devices("gpu")
    except RuntimeError as err:
        raise ValueError(f"device {device}: jax has no GPU backend (install jax[cuda12])") from err
    if not torch.cuda.is_available():
        raise ValueError(f"device {device}: torch sees no CUDA device (a CPU-only torch build?)")
    index = device.index if device.index is not None else torch.cuda.current_device()
    matches = [d for d in gpus if d.local_hardware_id == index]
    if not matches:
        raise ValueError(f"device {device}: no JAX GPU with local_hardware_id {index}")
    if not {"XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION"} & set(os.environ):
        warnings.warn("JAX preallocates 75% of GPU memory, leaving torch little: set "
                      "XLA_PYTHON_CLIENT_PREALLOCATE=false before importing jax", stacklevel=2)
    return torch.device("cuda", index), matches[0]


def _keystr(path: tuple) -> str:
    return jax.tree_util.keystr(path, simple=True, separator=".")


class PlaygroundTorchEnv(TorchVecEnv):
    """A JAX VecEnv (e.g. from playground.load_playground) behind the torch contract."""

    def __init__(self, vec_env: VecEnv, *, device: str | torch.device | None = None):
        self.vec_env = vec_env
        self.name = vec_env.name
        self.num_envs = vec_env.num_envs
        self.obs_size = vec_env.obs_size
        self.action_size = vec_env.action_size
        self.max_episode_steps = vec_env.max_episode_steps
        self.device, self._jax_device = resolve_device(device)
        # Jitting the bound methods shares JAX's compilation cache with any other jax.jit(vec_env.step).
        self._reset = jax.jit(vec_env.reset, static_argnames="random_step_count")
        self._step = jax.jit(vec_env.step)
        self._state: EnvState | None = None
        self._obs: torch.Tensor | None = None
        self._action_in_flight: torch.Tensor | None = None

    def __repr__(self) -> str:
        return f"PlaygroundTorchEnv({self.vec_env!r}, device={self.device})"

    @property
    def jax_state(self) -> EnvState:
        """The JAX EnvState inside (arrays on the JAX device matching self.device)."""
        if self._state is None:
            raise RuntimeError(f"{self.name}: call reset(seed) first")
        return self._state

    @jax_state.setter
    def jax_state(self, state: EnvState) -> None:
        """Replace the state, e.g. by the one a differentiated window reached (envs/jax_autograd.py)."""
        self._set_state(state)

    @property
    def obs(self) -> torch.Tensor:
        if self._obs is None:
            raise RuntimeError(f"{self.name}: call reset(seed) first")
        return self._obs

    def _set_state(self, state: EnvState) -> None:
        self._state = state
        self._obs = jax_to_torch(state.obs)

    def _key(self, seed: int) -> jax.Array:
        # A committed key pins the jitted reset, and so the whole state, to the chosen JAX device.
        return jax.device_put(jax.random.PRNGKey(seed), self._jax_device)

    def reset(self, seed: int, *, random_step_count: bool = True) -> torch.Tensor:
        """Same as VecEnv.reset(jax.random.PRNGKey(seed), random_step_count=...)."""
        self._set_state(self._reset(self._key(seed), random_step_count=random_step_count))
        return self._obs

    def step(self, action: torch.Tensor) -> EnvStep:
        """action [N, A] f32 on self.device; the EnvStep tensors alias JAX's outputs (read-only)."""
        expected = (self.num_envs, self.action_size)
        if tuple(action.shape) != expected or action.dtype != torch.float32 or action.device != self.device:
            raise ValueError(f"{self.name}: action must be {expected} float32 on {self.device}, got "
                             f"{tuple(action.shape)} {action.dtype} on {action.device}")
        # JAX reads the action asynchronously on its own stream, and nothing orders torch's later kernels
        # after that read: JAX gets a private copy (N x A floats), so the caller may write its tensor at
        # once, and the copy is held until the next step, by which time torch has waited (through
        # __dlpack__) for this step's outputs, so JAX is done with it before torch's allocator reuses it.
        action = action.detach().clone(memory_format=torch.contiguous_format)
        state, out = self._step(self.jax_state, torch_to_jax(action))
        self._action_in_flight = action
        self._set_state(state)
        return EnvStep(*(jax_to_torch(x) for x in out))

    def state_dict(self) -> dict[str, np.ndarray]:
        """The EnvState's leaves as numpy copies, keyed by their pytree path ("raw.data.qpos", "key")."""
        leaves, _ = jax.tree_util.tree_flatten_with_path(self.jax_state)
        return {_keystr(path): np.array(leaf) for path, leaf in leaves}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Rebuild the EnvState with the treedef of a fresh reset (traced abstractly: nothing runs)."""
        specs, treedef = jax.tree_util.tree_flatten_with_path(jax.eval_shape(self._reset, self._key(0)))
        keys = [_keystr(path) for path, _ in specs]
        if set(state) != set(keys):
            missing, unexpected = sorted(set(keys) - set(state)), sorted(set(state) - set(keys))
            raise ValueError(f"{self.name}: state_dict keys: missing {missing}, unexpected {unexpected}")
        leaves = []
        for key, (_, spec) in zip(keys, specs):
            value = np.array(state[key])  # a copy: later edits of `state` cannot leak into the env
            if value.shape != spec.shape or value.dtype != spec.dtype:
                raise ValueError(f"{self.name}: {key} is {value.shape} {value.dtype}, "
                                 f"expected {spec.shape} {spec.dtype}")
            leaves.append(jax.device_put(value, self._jax_device))
        self._set_state(jax.tree_util.tree_unflatten(treedef, leaves))

    def episode_metrics(self) -> dict[str, float]:
        return {}  # DM Control tasks report no success flag; returns are the trainer's

    def close(self) -> None:
        self._state = self._obs = self._action_in_flight = None
