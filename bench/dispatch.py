"""Ops dispatched and host syncs of the torch path, counted on any machine: the CPU proxy of launch overhead.

At the paper's sizes the update phase's tensors live in L2 and an op's cost on a GPU is mostly its launch,
so the number of ops a phase dispatches is what eager execution pays per phase, and what a CUDA graph
(on_torch/cuda_graph.py) turns into one launch. A host sync inside a phase would stall the GPU, and makes
the phase impossible to capture. Both are counts, the same on every machine, so CI keeps them honest
(tests/on_torch/test_dispatch_budget.py asserts the budgets below) where a timing could not be.

The counter is a TorchDispatchMode: it sees every aten op that reaches the dispatcher below autograd, the
backward pass's included, at the level where each becomes a kernel launch on a GPU (views too, which launch
nothing but still cost a dispatch). The torch profiler nests ops within ops (aten::linear over aten::addmm),
which would count a launch several times. Host syncs are the ops that read a device value on the host
(`.item()`, `float(t)`, `bool(t)`, `if t:` all reach aten._local_scalar_dense) or whose output shape
depends on values (nonzero, masked_select, unique: the host must wait to allocate).

    python -m bench.dispatch            # the table for every algorithm, on ToyPointMass

Each row: dispatched ops per call of a phase (equal at every call, or the phase could not be captured),
and host syncs per iteration.
"""

from __future__ import annotations

import argparse
import contextlib
from collections import defaultdict
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
# Ops that make the host wait for the device.
SYNC_OPS = frozenset({aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default,
                      aten._unique2.default, aten.unique_consecutive.default, aten.unique_dim.default,
                      aten.repeat_interleave.Tensor})

# The budgets CI asserts, per (algorithm, phase): ops dispatched per call on the cpu-preset networks
# (measured 2026-11-30, torch 2.13 CPU, with about 10 % headroom). A change that adds dispatches beyond them
# must say why and raise them here.
BUDGETS = {
    ("reppo", "update step"): 780,   # measured 710 (1811 before issue 18: per-tensor guard, clip and Adam)
    ("reppo", "rollout step"): 220,  # measured 197 (bootstrap t + act t+1 + the buffer writes)
    ("ppo", "update step"): 430,     # measured 387 (1140 before)
    ("ppo", "rollout step"): 190,    # measured 169
}


class DispatchCounter(TorchDispatchMode):
    """Counts the ops of each call of each named section (`section`), and the host syncs anywhere."""

    def __init__(self):
        super().__init__()
        self.open: list[str] = []                                   # the sections the current op is in
        self.calls: dict[str, list[list[str]]] = defaultdict(list)  # section -> each call's op names
        self.syncs: list[tuple[str | None, str]] = []                # (innermost section, op)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for name in self.open:
            self.calls[name][-1].append(str(func))
        if func in SYNC_OPS:
            self.syncs.append((self.open[-1] if self.open else None, str(func)))
        return func(*args, **(kwargs or {}))

    @contextlib.contextmanager
    def section(self, name: str):
        """Ops dispatched inside are one call of section `name` (and of every section around it)."""
        self.open.append(name)
        self.calls[name].append([])
        try:
            yield
        finally:
            self.open.pop()


def sectioned(counter: DispatchCounter, name: str, fn: Callable) -> Callable:
    """fn, each call counted as one call of section `name`."""
    def call(*args, **kwargs):
        with counter.section(name):
            return fn(*args, **kwargs)
    return call


def build(algo: str, **overrides):
    """A torch trainer of the cpu preset on ToyPointMass (small: the counts do not depend on sizes)."""
    from reppo_fast.config import preset_config, validate
    from reppo_fast.envs import make_torch_env
    from reppo_fast.kernels import bind
    from reppo_fast.on_torch.trainer import Trainer
    from reppo_fast.runner import algorithm

    fields = dict(env="ToyPointMass", framework="torch", num_envs=32, num_steps=4, num_epochs=2,
                  num_minibatches=2, num_eval_envs=1, progress=False, **overrides)
    cfg = preset_config("cpu", algo, **fields)
    validate(cfg)
    env = make_torch_env("ToyPointMass", num_envs=cfg.num_envs, device="cpu")
    return Trainer(cfg, env, None, bind("torch", "reference"), algorithm("torch", algo), torch.device("cpu"))


def warm_state(trainer):
    """A state after one iteration: Adam has made its state and every phase has run once."""
    return trainer.iteration(trainer.init_state(0))[0]


def count_iteration(trainer, state, iterations: int = 1) -> DispatchCounter:
    """Run `iterations` iterations with every phase's calls counted: `rollout step` (bootstrap t + act t+1,
    the captured call, with the copy of the env's output into its buffers), `env step`, `update step` (one
    minibatch: the guarded critic + actor steps), `update phase` (the whole captured update phase)."""
    phases = trainer._phases_for(state)
    counter = DispatchCounter()
    saved = {}
    if phases.rollout is not None:
        rollout = phases.rollout
        saved.update(middle=rollout.middle, env_step=rollout.env.step)
        rollout.middle = sectioned(counter, "rollout step", rollout.middle)
        rollout.env.step = sectioned(counter, "env step", rollout.env.step)
    saved.update(update_step=trainer.update_step, learn=phases.learn)
    trainer.update_step = sectioned(counter, "update step", trainer.update_step)
    phases.learn = sectioned(counter, "update phase", phases.learn)
    try:
        with counter:
            for _ in range(iterations):
                state, _ = trainer.iteration(state)
    finally:
        trainer.update_step, phases.learn = saved["update_step"], saved["learn"]
        if phases.rollout is not None:
            rollout.middle = saved["middle"]
            del rollout.env.step  # back to the class's method
    return counter


def table(algos=("reppo", "ppo")) -> list[str]:
    lines = ["| algorithm | phase | calls | ops per call | same ops every call | host syncs |",
             "| --- | --- | --- | --- | --- | --- |"]
    for algo in algos:
        trainer = build(algo)
        counter = count_iteration(trainer, warm_state(trainer))
        for name, calls in counter.calls.items():
            same = all(c == calls[0] for c in calls)
            syncs = sum(1 for where, _ in counter.syncs if where == name)
            lines.append(f"| {algo} | {name} | {len(calls)} | {len(calls[0])} | {same} | {syncs} |")
        lines.append(f"| {algo} | whole iteration | 1 | | | {len(counter.syncs)} |")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", nargs="+", default=["reppo", "ppo"])
    args = parser.parse_args(argv)
    print("\n".join(table(tuple(args.algos))))


if __name__ == "__main__":
    main()
