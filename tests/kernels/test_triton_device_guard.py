"""Every Triton launch runs inside `_common.on_device(t)` for one of the tensors it is given.

Triton launches on the current CUDA device, not the tensors' (kernels/triton_ops/_common.py). On a CPU
the guard does nothing observable, so the test watches it instead: `on_device` is replaced by a recorder
that notes which tensor is entered, and every `*_kernel` of the three modules by a proxy that, at launch,
requires a recorded tensor to be open and to be one of the launch's arguments. A launcher without the
guard fails here; so does a kernel that no public op launches (the test would no longer cover it).
"""

import contextlib

import pytest
import torch

pytest.importorskip("triton", reason="the Triton kernels need the triton package")

from reppo_fast.kernels.triton_ops import (  # noqa: E402
    _common,  # noqa: E402
    hl_gauss_ce,
    lambda_returns,
    tanh_normal,
)
from reppo_fast.process_env import triton_device  # noqa: E402

DEVICE = triton_device()
MODULES = (hl_gauss_ce, lambda_returns, tanh_normal)
SUPPORT = {"v_min": -5.0, "v_max": 5.0}


class _Watch:
    """The recorder for `on_device` and the launch proxies' log: (kernel name, guarded) per launch."""

    def __init__(self):
        self.open: list[torch.Tensor] = []
        self.launches: list[tuple[str, bool]] = []

    @contextlib.contextmanager
    def on_device(self, x, _real=_common.on_device):
        self.open.append(x)
        try:
            with _real(x):
                yield
        finally:
            self.open.pop()

    def proxy(self, name, kernel):
        watch = self

        class _Launch:
            def __getitem__(self, grid):
                def launch(*args, **kwargs):
                    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
                    guarded = bool(watch.open) and any(watch.open[-1] is t for t in tensors)
                    watch.launches.append((name, guarded))
                    return kernel[grid](*args, **kwargs)

                return launch

        return _Launch()


def _kernels(module):
    return {name: getattr(module, name) for name in vars(module) if name.endswith("_kernel")}


@pytest.fixture
def watch(monkeypatch):
    watch = _Watch()
    monkeypatch.setattr(_common, "on_device", watch.on_device)
    for module in MODULES:
        for name, kernel in _kernels(module).items():
            monkeypatch.setattr(module, name, watch.proxy(name, kernel))
    return watch


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(DEVICE)


def test_every_launch_is_guarded_and_every_kernel_launched(watch):
    logits = _randn(3, 7).requires_grad_()
    targets = _randn(3, seed=1)
    hl_gauss_ce.hl_gauss_ce(logits, targets, **SUPPORT).sum().backward()
    hl_gauss_ce.hl_gauss_decode(logits, **SUPPORT).sum().backward()
    hl_gauss_ce.hl_gauss_hist(targets, num_bins=7, **SUPPORT)

    mean, log_std = (_randn(3, 2, seed=s).requires_grad_() for s in (2, 3))
    noise, old_mean, old_log_std = (_randn(3, 2, seed=s) for s in (4, 5, 6))
    out = tanh_normal.tanh_normal(mean, log_std, noise, old_mean, old_log_std, _randn(2, 3, 2, seed=7))
    (out.action.sum() + out.log_prob.sum() + out.kl.sum()).backward()

    flags = torch.zeros(4, 3, dtype=torch.bool, device=DEVICE)
    lambda_returns.lambda_returns(_randn(4, 3, seed=8), _randn(4, 3, seed=9), flags, flags, gamma=0.9,
                                  lmbda=0.95)

    unguarded = sorted({name for name, guarded in watch.launches if not guarded})
    assert not unguarded, f"launched outside _common.on_device(one of their tensors): {unguarded}"
    expected = {name for module in MODULES for name in _kernels(module)}
    assert {name for name, _ in watch.launches} == expected
