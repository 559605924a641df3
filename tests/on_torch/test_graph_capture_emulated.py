"""The torch trainer's CUDA-graph phases, captured and replayed by a CPU emulation of a CUDA graph, give
bit for bit the eager trainer's iterations: graph-safety by construction, checked without a GPU.

The emulation (`EmulatedCapture`, in place of on_torch/cuda_graph.CudaCapture) does what a graph does and
no more: capture records every aten op below autograd (the kernels a GPU would record), with its tensors;
a replay re-runs exactly those ops on exactly those tensors, each result written into the tensor the
capture made (a graph's fixed addresses). So whatever a phase does in Python (a counter, a branch, a
shape) is frozen at capture, as on a GPU, and a host read during capture is refused, as CUDA refuses it.
A phase that depended on Python state, allocated its inputs afresh, or drew its noise outside the graph
would replay stale values and differ from eager (the last tests show the emulation catches both)."""

import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from bench.dispatch import SYNC_OPS, build
from reppo_fast.on_torch.cuda_graph import Graphed


class EmulatedCapture:
    """A CUDA graph on a CPU (see the module docstring). `captured` counts captures."""

    captured = 0

    @staticmethod
    def warm(fn):
        return fn()

    @classmethod
    def capture(cls, fn, generators):
        del generators  # a replay re-runs the recorded draws on the same generator objects: they advance
        trace = []

        class Record(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if func in SYNC_OPS:
                    raise RuntimeError(f"host sync while capturing: {func}")
                out = func(*args, **kwargs)
                trace.append((func, args, kwargs, out))
                return out

        with Record():
            result = fn()  # unlike a real capture this does the call's work, so the first replay is skipped
        cls.captured += 1
        pending = [False]

        @torch.no_grad()
        def replay():
            if not pending[0]:
                pending[0] = True
                return
            for func, args, kwargs, out in trace:
                new = func(*args, **kwargs)
                if any(r.alias_info is not None for r in func._schema.returns):
                    continue  # in place or a view: it already wrote to (or looks at) the captured memory
                for old_t, new_t in zip(pytree.tree_leaves(out), pytree.tree_leaves(new)):
                    if isinstance(old_t, torch.Tensor):
                        old_t.copy_(new_t)

        return result, replay


def _state_tensors(state) -> dict[str, torch.Tensor]:
    out = {f"actor.{k}": v for k, v in state.actor.state_dict().items()}
    out.update({f"critic.{k}": v for k, v in state.critic.state_dict().items()})
    for name, opt in (("actor_opt", state.actor_opt), ("critic_opt", state.critic_opt)):
        for i, slots in enumerate(opt.state.values()):
            out.update({f"{name}.{i}.{k}": v for k, v in slots.items()})
    out.update({f"norm.{k}": v for k, v in state.rollout.norm._asdict().items()})
    out["ep_return"] = state.rollout.ep_return
    out["generator"] = state.generator.get_state()
    return out


@pytest.mark.parametrize("algo", ["reppo", "ppo"])
def test_emulated_graphs_replay_the_eager_iterations_bit_for_bit(algo):
    eager, graphed = build(algo), build(algo)
    graphed.graphs, graphed.capture = True, EmulatedCapture
    before = EmulatedCapture.captured
    a, b = eager.init_state(0), graphed.init_state(0)
    # Two warm-up calls per phase, then the capture, then replays: the rollout step (3 calls per iteration)
    # is captured in iteration 1, the first and last steps and the update phase in iteration 3.
    for i in range(5):
        a, ma = eager.iteration(a)
        b, mb = graphed.iteration(b)
        assert ma.keys() == mb.keys()
        differ = [k for k in ma if not torch.equal(ma[k], mb[k])]
        assert not differ, f"iteration {i + 1}: {differ}"
    assert EmulatedCapture.captured - before == 4
    ta, tb = _state_tensors(a), _state_tensors(b)
    assert ta.keys() == tb.keys()
    assert [k for k in ta if not torch.equal(ta[k], tb[k])] == []


def test_rpo_update_phase_replays_bit_for_bit():
    """RPO's rollout is differentiated through the JAX physics and stays eager; its update phase, copied
    into static buffers, is captured like the others."""
    from reppo_fast.config import Config
    from reppo_fast.runner import _build

    cfg = Config().replace(env="ToyPointMass", framework="torch", algo="rpo", num_envs=4, num_steps=4,
                           num_epochs=2, num_minibatches=2, actor_hidden=16, actor_hidden_blocks=2,
                           critic_hidden=16, critic_hidden_blocks=2, rpo_epochs=2, num_eval_envs=1,
                           progress=False)
    eager, graphed = _build(cfg).trainer, _build(cfg).trainer
    graphed.graphs, graphed.capture = True, EmulatedCapture
    before = EmulatedCapture.captured
    a, b = eager.init_state(0), graphed.init_state(0)
    for i in range(4):
        a, ma = eager.iteration(a)
        b, mb = graphed.iteration(b)
        assert [k for k in ma if not torch.equal(ma[k], mb[k])] == [], f"iteration {i + 1}"
    assert EmulatedCapture.captured - before == 1  # the update phase
    ta, tb = _state_tensors(a), _state_tensors(b)
    assert [k for k in ta if not torch.equal(ta[k], tb[k])] == []


def test_the_emulation_freezes_python_state_as_a_graph_does():
    """The oracle of the test above: a phase that counts in Python replays its capture-time count, so it
    differs from eager; one that counts on the device does not."""
    python_count, device_count = torch.zeros(()), torch.zeros(())
    calls = [0]

    def phase():
        calls[0] += 1
        python_count.fill_(calls[0])
        device_count.add_(1)

    graphed = Graphed(phase, enabled=True, warmup=1, capture=EmulatedCapture)
    for _ in range(4):
        graphed()
    assert float(device_count) == 4.0
    assert float(python_count) == 2.0  # frozen at the capture (call 2)


def test_the_emulation_refuses_a_host_read_while_capturing():
    x = torch.ones(())
    graphed = Graphed(lambda: float(x * 2), enabled=True, warmup=0, capture=EmulatedCapture)
    with pytest.raises(RuntimeError, match="host sync while capturing"):
        graphed()
