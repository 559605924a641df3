"""Tensors made on the wrong device, caught without a GPU.

On a GPU the torch trainers run on CUDA, and a tensor made without a device lands on the CPU: a Triton
kernel handed it raises, a mixed-device op raises, a silent host copy stalls every step. On a CPU-only
machine every tensor is on the CPU anyway, so a plain run sees none of it. This test runs the trainers
(init, an iteration, evaluation, the checkpoint codec) under a TorchFunctionMode that records every tensor
factory call (torch.zeros, torch.tensor, torch.randn, ...) that reppo_fast's own code makes, directly or
through torch.nn (module construction), without saying where the tensor goes. A `torch.device(...)`
block says where: its mode passes the device on as the factory's `device` argument. Factories that torch
calls for itself (the optimiser's CPU step counter) are torch's business and not recorded.
"""

import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils._device import _device_constructors

import reppo_fast
from reppo_fast.config import Config
from reppo_fast.runner import _build

PACKAGE = str(Path(reppo_fast.__file__).parent)
TORCH = str(Path(torch.__file__).parent)
TORCH_NN = str(Path(torch.nn.__file__).parent)

TINY = dict(framework="torch", num_envs=8, num_steps=4, num_epochs=2, num_minibatches=2, actor_hidden=16,
            critic_hidden=16, critic_hidden_blocks=2, num_bins=21, v_min=0.0, v_max=100.0,
            num_eval_envs=2, episode_length=20, compile="off", progress=False)


def _implicit_site() -> str | None:
    """file:line of the reppo_fast code behind a factory call that named no device, or None when the
    call is torch's own (made from torch code other than torch.nn) or comes from outside the package."""
    frame = sys._getframe(2)  # the caller of __torch_function__'s caller
    via_nn = False
    while frame is not None and frame.f_code.co_filename.startswith(TORCH):
        via_nn = via_nn or frame.f_code.co_filename.startswith(TORCH_NN)
        if not via_nn:
            return None
        frame = frame.f_back
    if frame is None or not frame.f_code.co_filename.startswith(PACKAGE):
        return None
    return f"{Path(frame.f_code.co_filename).relative_to(PACKAGE)}:{frame.f_lineno}"


class FactoryDevices(TorchFunctionMode):
    """Records every device-less tensor factory call made by reppo_fast code."""

    def __init__(self):
        super().__init__()
        self.implicit: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _device_constructors() and kwargs.get("device") is None:
            site = _implicit_site()
            if site is not None:
                self.implicit.append(f"{func.__name__} at {site}")
        return func(*args, **kwargs)


def _tensors(state) -> list[torch.Tensor]:
    """Every tensor a TrainState holds: parameters, optimiser moments, carry, generator-free leaves."""
    found = [t for module in (state.actor, state.critic) for t in module.state_dict().values()]
    for opt in (state.actor_opt, state.critic_opt):
        found += [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    found += [t for t in pytree.tree_leaves((state.rollout.norm, state.rollout.ep_return))]
    return found


@pytest.mark.parametrize("algo", ["reppo", "ppo"])
@pytest.mark.parametrize("env", ["ToyPointMass", "CartpoleBalance"])
def test_torch_trainers_name_the_device_of_every_tensor_they_make(algo, env):
    cfg = Config().replace(**TINY, env=env, algo=algo)
    recorder = FactoryDevices()
    with recorder:
        cfg, trainer, *_ = _build(cfg)
        state = trainer.init_state(cfg.seed)
        state, metrics = trainer.iteration(state)
        trainer.evaluate(state, cfg.seed, 1)
        state = trainer.from_arrays(state, trainer.to_arrays(state))
    assert recorder.implicit == [], (
        "tensors made without a device (on a GPU they would land on the CPU): "
        + ", ".join(sorted(set(recorder.implicit))))
    wrong = [tuple(t.shape) for t in [*_tensors(state), *metrics.values()] if t.device != trainer.device]
    assert wrong == []


def test_the_recorder_sees_a_device_less_factory_in_package_code():
    """The oracle itself: a factory called from reppo_fast without a device is recorded, the same inside a
    torch.device block is not, and torch's own internal factories are not."""
    from reppo_fast.on_torch import common

    recorder = FactoryDevices()
    with recorder:
        common.norm_init(3)  # device=None: the process default
        with torch.device("cpu"):
            common.norm_init(3)
        torch.optim.Adam([torch.nn.Parameter(torch.ones(2))]).step()
    assert len(recorder.implicit) == 3 and all("common.py" in s for s in recorder.implicit)
