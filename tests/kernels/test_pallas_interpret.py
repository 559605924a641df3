"""`interpret`, the one static keyword of every Pallas op (kernels/pallas_ops/_common.py): decided per call
from JAX's default backend when None, never read from module state, and handed to every pallas_call."""

import inspect

import jax
import jax.numpy as jnp
import pytest

from reppo_fast.kernels.pallas_ops import _common, hl_gauss_ce, lambda_returns, tanh_normal

PUBLIC = [tanh_normal.tanh_normal, hl_gauss_ce.hl_gauss_ce, hl_gauss_ce.hl_gauss_decode,
          hl_gauss_ce.hl_gauss_hist, lambda_returns.lambda_returns]
SUPPORT = {"v_min": -5.0, "v_max": 5.0}


@pytest.mark.parametrize("op", PUBLIC, ids=lambda op: op.__name__)
def test_every_op_takes_interpret_as_a_keyword_defaulting_to_none(op):
    parameter = inspect.signature(op).parameters["interpret"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.default is None


def test_none_follows_the_default_backend_at_call_time(monkeypatch):
    assert _common.resolve_interpret(True) is True and _common.resolve_interpret(False) is False
    for backend, interpret in (("gpu", False), ("cuda", False), ("cpu", True)):
        monkeypatch.setattr(jax, "default_backend", lambda backend=backend: backend)
        assert _common.resolve_interpret(None) is interpret


def _every_op(interpret, num_envs):
    """Each op, forward and backward; lambda_returns at `num_envs` envs, a shape its jit has not cached."""
    x = jnp.linspace(-1.0, 1.0, 15).reshape(3, 5)
    tanh_normal.tanh_normal(x, 0.1 * x, x, x, 0.2 * x, jnp.stack([x, -x]), interpret=interpret)
    jax.grad(lambda m: tanh_normal.tanh_normal(m, 0.1 * x, x, x, 0.2 * x, interpret=interpret).kl.sum())(x)
    jax.grad(lambda a: hl_gauss_ce.hl_gauss_ce(a, x[:, 0], **SUPPORT, interpret=interpret).sum())(x)
    jax.grad(lambda a: hl_gauss_ce.hl_gauss_decode(a, **SUPPORT, interpret=interpret).sum())(x)
    hl_gauss_ce.hl_gauss_hist(x[:, 0], num_bins=5, **SUPPORT, interpret=interpret)
    values, flags = jnp.ones((3, num_envs)), jnp.zeros((3, num_envs), bool)
    lambda_returns.lambda_returns(values, values, flags, flags, gamma=0.9, lmbda=0.95, interpret=interpret)


@pytest.mark.parametrize("interpret, backend, expected, num_envs", [
    (False, "cpu", False, 7), (None, "gpu", False, 9), (None, "cpu", True, 11)])
def test_every_pallas_call_gets_the_call_s_interpret(monkeypatch, interpret, backend, expected, num_envs):
    """A recorder stands in for pl.pallas_call: it notes `interpret` and runs the kernel interpreted (this
    machine has no GPU), so the ops run to the end whatever they were asked."""
    seen = []
    pallas_call = _common.pl.pallas_call

    def recorder(*args, interpret, **kwargs):
        seen.append(interpret)
        return pallas_call(*args, interpret=True, **kwargs)

    monkeypatch.setattr(_common.pl, "pallas_call", recorder)
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    _every_op(interpret, num_envs)
    assert len(seen) == 8 and set(seen) == {expected}  # tanh 1 + 2, ce 1, decode 2, hist 1, returns 1
    assert not [m for m in (tanh_normal, hl_gauss_ce, lambda_returns) if hasattr(m, "INTERPRET")]
