"""Compiled calls hand back tensors the caller owns (reppo_fast/on_torch/compiling.py), checked on a CPU.

Under CUDA graphs (torch.compile mode `reduce-overhead`) a compiled call's outputs live in the graphs'
memory pool, and the next replay of any graph overwrites them. A CPU has no CUDA graphs, so this test
swaps torch.compile for a stand-in with that lifetime and worse: every call poisons (NaN, flipped bools,
garbage integers) every output any compiled function returned before. A trainer that keeps a compiled
output past the next call (the rollout stacking the acting outputs, the carry feeding `norm` back, the
update keeping each step's metrics) then logs poison instead of the eager run's numbers.
"""

import json

import pytest
import torch
from torch.utils import _pytree as pytree

from reppo_fast.config import Config
from reppo_fast.on_torch import compiling
from reppo_fast.runner import run

TINY = dict(env="ToyPointMass", framework="torch", num_envs=8, num_steps=4, num_epochs=2, num_minibatches=2,
            actor_hidden=16, critic_hidden=16, critic_hidden_blocks=2, num_bins=21, v_min=0.0,
            v_max=100.0, num_eval_envs=2, eval_interval=100, checkpoint_interval=100, progress=False)
TIME_KEYS = {"time/iteration_s", "time/elapsed_s", "time/env_steps_per_s", "wall_time"}


def _poison_(t: torch.Tensor) -> None:
    if t.dtype == torch.bool:
        t.logical_not_()
    elif t.is_floating_point():
        t.fill_(float("nan"))
    else:
        t.fill_(-123_456_789)


class GraphPoolCompile:
    """torch.compile's stand-in: runs fn eagerly, returns fresh output tensors, and poisons all earlier
    outputs of every function it compiled at each later call (the shared graph pool's worst case)."""

    def __init__(self):
        self.outstanding: list[torch.Tensor] = []
        self.calls = 0

    def __call__(self, fn, **_options):
        def call(*args, **kwargs):
            for t in self.outstanding:
                _poison_(t)
            self.calls += 1
            out = pytree.tree_map_only(torch.Tensor, lambda t: t.detach().clone(), fn(*args, **kwargs))
            self.outstanding = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
            return out
        return call


def _metrics(tmp_path, name, algo, compile_):
    cfg = Config().replace(**TINY, algo=algo, compile=compile_, total_steps=3 * 32,
                           run_dir=str(tmp_path / name))
    lines = (run(cfg) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS} for line in lines]


@pytest.mark.parametrize("algo", ["reppo", "ppo"])
def test_no_compiled_output_is_read_after_the_next_call(tmp_path, monkeypatch, algo):
    stand_in = GraphPoolCompile()
    monkeypatch.setattr(torch, "compile", stand_in)
    compiled = _metrics(tmp_path, "compiled", algo, "on")
    assert stand_in.calls > 0, "the trainer compiled nothing: the stand-in was not exercised"
    monkeypatch.undo()
    eager = _metrics(tmp_path, "eager", algo, "off")
    assert compiled == eager  # bit for bit: the stand-in computes eagerly, only lifetimes differ


def test_owned_outputs_copies_every_tensor_and_marks_graph_steps(monkeypatch):
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    pool = {"a": torch.ones(3), "b": (torch.zeros(2, dtype=torch.bool), 7)}
    owned = compiling.owned_outputs(lambda: pool, cuda_graphs=True)()
    assert marks == [1]
    assert owned["b"][1] == 7
    for mine, theirs in zip(pytree.tree_leaves(owned), pytree.tree_leaves(pool)):
        if isinstance(theirs, torch.Tensor):
            assert torch.equal(mine, theirs) and mine.data_ptr() != theirs.data_ptr()
    compiling.owned_outputs(lambda: pool, cuda_graphs=False)()
    assert marks == [1]  # no CUDA graphs: no step marks


@pytest.mark.parametrize("device, compile_, graphs, expected", [
    ("cpu", "auto", True, (False, None)),
    ("cpu", "on", True, (True, None)),        # CUDA graphs need CUDA
    ("cuda", "auto", True, (True, "reduce-overhead")),
    ("cuda", "auto", False, (True, None)),
    ("cuda", "off", True, (False, None)),
])
def test_compile_mode_policy(device, compile_, graphs, expected):
    cfg = Config().replace(compile=compile_, cuda_graphs=graphs)
    assert compiling.compile_mode(cfg, torch.device(device)) == expected
