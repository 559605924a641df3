"""What the torch path compiles and captures (reppo_fast/on_torch/compiling.py): torch.compile `auto` on
CUDA only, CUDA graphs only on CUDA, the two independent (eager code can be captured too)."""

import pytest
import torch

from reppo_fast.config import Config
from reppo_fast.on_torch import compiling


@pytest.mark.parametrize("device, compile_, graphs, expected", [
    ("cpu", "auto", True, (False, False)),
    ("cpu", "on", True, (True, False)),       # CUDA graphs need CUDA
    ("cuda", "auto", True, (True, True)),
    ("cuda", "auto", False, (True, False)),
    ("cuda", "off", True, (False, True)),     # eager kernels, captured
])
def test_compile_and_graph_policy(device, compile_, graphs, expected):
    cfg = Config().replace(compile=compile_, cuda_graphs=graphs)
    device = torch.device(device)
    assert (compiling.compile_on(cfg, device), compiling.graphs_on(cfg, device)) == expected


def test_compiled_is_torch_compile_without_graphs_of_its_own(monkeypatch):
    """The trainer captures whole phases itself: torch.compile must not add CUDA-graph trees (mode
    reduce-overhead), whose replays would overwrite outputs the phases keep."""
    seen = {}
    monkeypatch.setattr(torch, "compile", lambda fn, **options: seen.update(options) or fn)
    cfg = Config().replace(compile="on")
    compiling.compiled(lambda: None, cfg, torch.device("cpu"), fullgraph=True)
    assert seen == {"fullgraph": True}
    assert compiling.compiled(abs, cfg.replace(compile="off"), torch.device("cpu"), fullgraph=True) is abs
