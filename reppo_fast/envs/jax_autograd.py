"""Differentiating the JAX VecEnv's physics from torch (RPO on the torch path; docs/algorithms.md section 11).

`DifferentiableJaxEnv` wraps a PlaygroundTorchEnv for one differentiated window: `begin()` takes the env's
current EnvState, `step(action)` advances it through `JaxStep`, a torch.autograd.Function, and `end()` writes
the reached state back (detached), so evaluation, checkpoints and the next window see it as after plain steps.

JaxStep's forward runs the jitted `jax.vjp` of VecEnv.step (under jax.checkpoint when remat is asked for:
then the residuals are the step's inputs, and the backward pass recomputes the physics) and keeps the vjp's
residuals on ctx; its backward calls the jitted vjp once. The env state's floating-point leaves travel as ONE
flat vector (in the widest float dtype among them, an exact round trip), an input and an output of the
Function, so gradients flow through the state from step to step within an episode; integer, boolean, key
and empty leaves pass beside it as JAX arrays. (One vector, not ~100 leaves, crosses DLPack per step.) The
gradient cut at an episode end is VecEnv.step's own (a stop_gradient first state).

Arrays cross by DLPack as in playground_torch.py: zero-copy both ways on one device, each side reading
finished data (torch.from_dlpack waits for JAX's outputs, which were computed from the inputs JAX was given;
a DLPack capsule keeps its source alive, so the residuals may alias torch tensors). Cotangents torch leaves
undefined (an output nothing used, e.g. the last step's state) become zeros on the JAX side.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

from reppo_fast.envs.contract_jax import EnvState, VecEnv
from reppo_fast.envs.contract_torch import EnvStep
from reppo_fast.envs.playground_torch import PlaygroundTorchEnv, jax_to_torch, torch_to_jax


class StepProgram:
    """The jitted JAX side of one VecEnv.step: split/join of an EnvState into (flat floats, other leaves),
    the forward returning (outputs, vjp, aux) and the backward applying the vjp. Built from a state's layout.

    Differentiated outputs: (flat state', obs, next_obs, reward); aux: (other leaves', terminated, truncated,
    nonfinite)."""

    def __init__(self, vec_env: VecEnv, template: EnvState, *, remat: bool):
        leaves, self.treedef = jax.tree.flatten(template)
        self.floating = tuple(bool(jnp.issubdtype(x.dtype, jnp.floating)) and x.size > 0 for x in leaves)
        floats = [x for x, f in zip(leaves, self.floating) if f]
        self.layout = tuple((x.shape, x.dtype) for x in floats)
        self.dtype = jnp.result_type(*(x.dtype for x in floats))
        self.vec_env = vec_env
        step = jax.checkpoint(self._step) if remat else self._step

        def forward(action, flat, others):
            return jax.vjp(lambda a, s: step(a, s, others), action, flat, has_aux=True)

        self.forward = jax.jit(forward)
        self.backward = jax.jit(lambda vjp, cotangents: vjp(cotangents))
        self.split = jax.jit(self._split)
        self.join = jax.jit(self._join)
        action = jax.ShapeDtypeStruct((vec_env.num_envs, vec_env.action_size), jnp.float32)
        flat, others = jax.eval_shape(self._split, template)
        self.out_specs = jax.eval_shape(self._step, action, flat, others)[0]

    def _split(self, state: EnvState):
        leaves = jax.tree.leaves(state)
        flat = [x.ravel().astype(self.dtype) for x, f in zip(leaves, self.floating) if f]
        return jnp.concatenate(flat), tuple(x for x, f in zip(leaves, self.floating) if not f)

    def _join(self, flat, others) -> EnvState:
        floats, others = iter(self._unflatten(flat)), iter(others)
        leaves = [next(floats) if f else next(others) for f in self.floating]
        return jax.tree.unflatten(self.treedef, leaves)

    def _unflatten(self, flat):
        out, start = [], 0
        for shape, dtype in self.layout:
            size = int(np.prod(shape))
            out.append(flat[start:start + size].reshape(shape).astype(dtype))
            start += size
        return out

    def _step(self, action, flat, others):
        state, out = self.vec_env.step(self._join(flat, others), action)
        new_flat, new_others = self._split(state)
        return (new_flat, out.obs, out.next_obs, out.reward), (new_others, out.terminated, out.truncated,
                                                                out.nonfinite)

    def zeros_like_outputs(self, cotangents: tuple) -> tuple:
        """None (an output torch did not differentiate) -> zeros of that output's shape and dtype."""
        return tuple(jnp.zeros(s.shape, s.dtype) if c is None else c
                     for c, s in zip(cotangents, self.out_specs))


class JaxStep(torch.autograd.Function):
    """(program, other leaves, action [N, A], flat state [S]) -> (flat state', obs, next_obs, reward, aux)
    with aux = (other leaves', terminated, truncated, nonfinite) as JAX arrays (not differentiated)."""

    @staticmethod
    def forward(ctx, program: StepProgram, others: tuple, action: torch.Tensor, flat: torch.Tensor):
        outputs, vjp, aux = program.forward(torch_to_jax(action), torch_to_jax(flat), others)
        ctx.program, ctx.vjp = program, vjp
        ctx.set_materialize_grads(False)  # undefined cotangents become zeros in JAX (no torch allocation)
        return (*(jax_to_torch(x) for x in outputs), aux)

    @staticmethod
    def backward(ctx, *grads):
        program, vjp = ctx.program, ctx.vjp
        ctx.vjp = None  # the residuals are freed with it: one backward pass per window (no retain_graph)
        cotangents = tuple(None if g is None else torch_to_jax(g) for g in grads[:-1])
        d_action, d_flat = program.backward(vjp, program.zeros_like_outputs(cotangents))
        return None, None, jax_to_torch(d_action), jax_to_torch(d_flat)


class DifferentiableJaxEnv:
    """A PlaygroundTorchEnv's physics with autograd through it, for one window at a time:

        denv.begin(); for each step: out = denv.step(action)  (out's tensors carry the graph); denv.end()

    `obs` is the observation to act on (with the graph after the first step)."""

    def __init__(self, env: PlaygroundTorchEnv, *, remat: bool = True):
        if not isinstance(env, PlaygroundTorchEnv):
            raise TypeError(f"{env.name}: differentiating the physics needs the JAX VecEnv behind a "
                            f"PlaygroundTorchEnv, got {type(env).__name__}; build it with make_env + "
                            f"PlaygroundTorchEnv (DM Control tasks or ToyPointMass)")
        self.env, self.remat = env, remat
        self.name, self.num_envs, self.action_size = env.name, env.num_envs, env.action_size
        self.device = env.device
        self._program: StepProgram | None = None
        self._flat: torch.Tensor | None = None
        self._others: Any = None
        self.obs: torch.Tensor | None = None

    def begin(self) -> None:
        """Start a window from the wrapped env's current state (no gradient reaches it)."""
        state = self.env.jax_state
        if self._program is None:
            self._program = StepProgram(self.env.vec_env, state, remat=self.remat)
        flat, self._others = self._program.split(state)
        self._flat, self.obs = jax_to_torch(flat), self.env.obs

    def step(self, action: torch.Tensor) -> EnvStep:
        """action [N, A] float32 on the env's device (may require grad) -> the EnvStep, its float fields
        differentiable with respect to the actions and the state of this window."""
        if self._flat is None:
            raise RuntimeError(f"{self.name}: call begin() before step()")
        expected = (self.num_envs, self.action_size)
        if tuple(action.shape) != expected or action.dtype != torch.float32 or action.device != self.device:
            raise ValueError(f"{self.name}: action must be {expected} float32 on {self.device}, got "
                             f"{tuple(action.shape)} {action.dtype} on {action.device}")
        flat, obs, next_obs, reward, aux = JaxStep.apply(self._program, self._others, action, self._flat)
        self._others, terminated, truncated, nonfinite = aux
        self._flat, self.obs = flat, obs
        return EnvStep(obs, next_obs, reward, *(jax_to_torch(x) for x in (terminated, truncated, nonfinite)))

    def end(self) -> None:
        """Write the reached state back into the wrapped env, detached; the window's graph stays with the
        tensors `step` returned."""
        if self._flat is None:
            raise RuntimeError(f"{self.name}: call begin() before end()")
        self.env.jax_state = self._program.join(torch_to_jax(self._flat.detach()), self._others)
        self._flat = self._others = self.obs = None
