"""Trainer.iterations: several iterations in one dispatch (a fori_loop inside one jit, state donated).

The oracle is `Trainer.iteration` dispatched once per iteration by the host: the same iteration function, so
n iterations in a dispatch must leave the same state and metrics bit for bit. Episodes of 10 steps end
inside the 8-step rollouts, so the episode statistics carried from iteration to iteration are exercised.
The two-device variant is in two_devices_checks.py (a process's device count is fixed when JAX starts).
"""

import contextlib

import jax
import numpy as np
import pytest

from reppo_fast.config import Config
from reppo_fast.envs import make_env
from reppo_fast.kernels import bind
from reppo_fast.on_jax.trainer import Trainer
from reppo_fast.runner import algorithm

TINY = dict(env="ToyPointMass", num_envs=8, num_steps=8, num_epochs=2, num_minibatches=2, actor_hidden=16,
            critic_hidden=16, num_bins=21, v_min=0.0, v_max=100.0, progress=False)
# jax._src.dispatch.BACKEND_COMPILE_EVENT: recorded once per XLA compilation.
BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


def _trainer(algo: str, k: int) -> Trainer:
    cfg = Config().replace(**TINY, algo=algo, iterations_per_dispatch=k)
    env = make_env("ToyPointMass", num_envs=cfg.num_envs, episode_length=10)
    return Trainer(cfg, env, env, bind("jax", "reference"), algorithm("jax", algo))


@contextlib.contextmanager
def _compilations():
    """The XLA compilations that happen inside the block, as a list of their durations."""
    seen = []

    def listener(event, duration, **_):
        if event == BACKEND_COMPILE:
            seen.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize("algo", ["reppo", "ppo"])
def test_iterations_in_two_dispatches_equal_one_iteration_per_dispatch(algo):
    trainer = _trainer(algo, 3)
    want_state, want = trainer.init_state(0), []
    for _ in range(5):
        want_state, metrics = trainer.iteration(want_state)
        want.append(jax.device_get(metrics))
    state, got = trainer.init_state(0), []
    for n in (3, 2):
        state, metrics = trainer.iterations(state, n)
        assert all(v.shape == (3,) for v in metrics.values())  # k rows, whatever n
        rows = trainer.to_host(metrics, n)
        assert all(isinstance(v, np.ndarray) and v.shape == (n,) for v in rows.values())
        got += [{name: v[i] for name, v in rows.items()} for i in range(n)]
    assert int(state.iteration) == 5
    for (path, w), g in zip(jax.tree_util.tree_flatten_with_path(want_state)[0], jax.tree.leaves(state)):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=jax.tree_util.keystr(path))
    assert 0 < sum(float(m["train/episodes"]) for m in want)  # episodes did end across dispatches
    for i, (w, g) in enumerate(zip(want, got)):
        assert g.keys() == w.keys()
        for name in w:
            np.testing.assert_array_equal(g[name], w[name], err_msg=f"iteration {i}: {name}")


def test_one_compilation_serves_every_iteration_count():
    """n is traced, not static: the dispatches after the first compile nothing, whatever their n."""
    trainer = _trainer("ppo", 4)
    with _compilations() as first:
        state, _ = trainer.iterations(trainer.init_state(0), 4)
        jax.block_until_ready(state)
    assert len(first) >= 1  # the counter sees compilations
    with _compilations() as later:
        for n in (1, 3, 2, 4, 1):
            state, metrics = trainer.iterations(state, n)
        jax.block_until_ready((state, metrics))
    assert later == []
    assert trainer._dispatch._cache_size() == 1
    assert int(state.iteration) == 4 + 11


def test_the_passed_state_is_donated_and_n_is_checked():
    trainer = _trainer("ppo", 2)
    state = trainer.init_state(0)
    for n in (0, 3):
        with pytest.raises(ValueError, match=f"n={n} must lie in 1..2"):
            trainer.iterations(state, n)
    new, _ = trainer.iterations(state, 2)
    # XLA:CPU honours donation for every leaf: each buffer of the old state now belongs to the new one.
    kept = [jax.tree_util.keystr(p) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]
            if not x.is_deleted()]
    assert kept == [] and not any(x.is_deleted() for x in jax.tree.leaves(new))
    with pytest.raises(RuntimeError, match="deleted"):
        np.asarray(state.iteration)
