"""The JAX ways to run one op: the jitted reference (XLA's fusion; lax.scan for lambda_returns) and the
jitted Pallas kernel. Forward+backward is one jitted jax.vjp with random cotangents."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from bench import machine, memory
from bench.built import Built
from bench.op_data import OPS, as_tuple, cotangents, inputs
from bench.shapes import Shape

VARIANTS = ("jax-xla", "pallas")


def _impl(op: str, variant: str) -> Callable:
    package = "pallas_ops" if variant == "pallas" else "reference_jax"
    return getattr(importlib.import_module(f"reppo_fast.kernels.{package}.{op}"), op)


def build(op: str, mode: str, shape: Shape, variant: str) -> Built:
    import jax
    import jax.numpy as jnp

    spec = OPS[op]
    fn = _impl(op, variant)
    values = inputs(op, shape)
    args = [jnp.asarray(values[k]) for k in spec.args]
    names = spec.outputs

    def forward(*a):
        return as_tuple(fn(*a, **spec.kwargs))

    if mode == "fwdbwd":
        where = [spec.args.index(k) for k in spec.differentiable]
        names = names + tuple(f"grad_{k}" for k in spec.differentiable)

        def forward_backward(a, cot):
            def of_differentiable(*diff):
                full = list(a)
                for i, value in zip(where, diff):
                    full[i] = value
                return forward(*full)

            outs, pullback = jax.vjp(of_differentiable, *(a[i] for i in where))
            return tuple(outs) + tuple(pullback(tuple(cot)))

        jitted = jax.jit(forward_backward)
        call_args = (args, [jnp.asarray(c) for c in cotangents(op, shape)])
    else:
        jitted = jax.jit(forward)
        call_args = tuple(args)

    def run():
        return jitted(*call_args)

    return Built(run, jax.block_until_ready, names, lambda: memory.jax_peak_added(jitted, *call_args),
                 np.asarray, interpreted=variant == "pallas" and not machine.jax_on_gpu())
