"""End to end: one whole iteration (rollout, lambda-returns, update phase) and one minibatch update
(critic + actor step), with env steps/s and peak memory, for each framework's reference and fast path.

torch: eager reference vs torch.compile + CUDA graphs, with the reference ops and with Triton. JAX: the
reference ops (XLA) vs Pallas. A minibatch update is timed as the trainer's update phase divided by its
epochs x minibatches: the per-minibatch gather and noise draws are included (JAX: on a random flat batch;
torch: the whole captured phase over the last rollout, so its targets and flat batch too).
"""

import numpy as np
import pytest

from bench import e2e_setup, machine, memory, selection
from bench.timing import Timed, measure

PARAMS = [(env, variant, what) for env in selection.ENVS for variant in e2e_setup.VARIANTS
          for what in ("iteration", "update")]


@pytest.fixture(scope="module", autouse=True)
def _free_last_trainer():
    """The last trainer built stays cached for its next measurement; free it before the op benchmarks."""
    yield
    e2e_setup.build.cache_clear()


def _sync(framework):
    if framework == "jax":
        import jax

        return jax.block_until_ready

    def sync(_):
        if machine.has_cuda():
            import torch

            torch.cuda.synchronize()

    return sync


def _timed_iteration(run):
    def call():
        run.state, metrics = run.trainer.iteration(run.state)
        return metrics

    return call, None


def _timed_update(run):
    if run.cfg.framework == "torch":
        # The trainer's update phase as it trains: one graph-safe call (captured as one CUDA graph with
        # graphs on) over the last rollout's static storage, its targets and flat batch included.
        run.state, _ = run.trainer.iteration(run.state)
        phases, trainer = run.trainer._phases_for(run.state), run.trainer
        return (lambda: dict(zip(trainer._metric_names, phases.learn()))), None
    batch = e2e_setup.flat_batch(run)
    import jax

    update = jax.jit(run.trainer._update)
    key = jax.random.PRNGKey(0)
    return (lambda: update(run.state, batch, key)[-1]), (update, (run.state, batch, key))


def _value(x) -> float:
    return float(x.detach().cpu()) if hasattr(x, "detach") else float(np.asarray(x))


def _assert_finite_losses(metrics, what):
    losses = {k: _value(v) for k, v in metrics.items() if k.endswith("loss")}
    assert losses, f"{what}: no loss among the metrics {sorted(metrics)}"
    assert all(np.isfinite(v) for v in losses.values()), f"{what}: non-finite losses {losses}"


@pytest.mark.parametrize("env,variant,what", PARAMS, ids=["-".join(p) for p in PARAMS])
def test_e2e(benchmark, request, env, variant, what):
    reason = selection.e2e_skip_reason(request.config, env, e2e_setup.VARIANTS[variant].needs_cuda)
    if reason:
        pytest.skip(reason)
    run = e2e_setup.build(env, variant)
    framework, cfg = run.cfg.framework, run.cfg
    call, jitted = (_timed_iteration if what == "iteration" else _timed_update)(run)
    _assert_finite_losses(call(), f"{variant} {env} {what}")  # also the first (compiling) call
    benchmark.group = f"e2e {env} {what}"
    # Warm-up beyond the first call: CUDA-graph trees record on their second call (and a JAX state not
    # committed to a device would compile the iteration again; init_state commits it).
    seconds = measure(benchmark, Timed(call, _sync(framework)), request.config, warmup=2)
    updates = cfg.num_epochs * cfg.num_minibatches
    if framework == "jax":
        target = jitted or (run.trainer.iteration, (run.state,))
        peak = memory.jax_peak_added(target[0], *target[1], with_arguments=True)
        method = "xla memory analysis (arguments + temporaries + outputs)"
    else:
        peak, method = e2e_setup.torch_peak(run), "torch allocator peak since build"
    info = {"kind": "e2e", "framework": framework, "variant": variant, "env": cfg.env, "measure": what,
            "steps_per_iteration": cfg.steps_per_iteration, "updates_per_call": updates,
            "config": {k: getattr(cfg, k) for k in ("preset", "num_envs", "num_steps", "num_epochs",
                                                    "num_minibatches", "actor_hidden", "critic_hidden",
                                                    "precision")},
            "peak_bytes": peak, "peak_method": method if peak is not None else None, **machine.record()}
    if seconds is not None:
        if what == "iteration":
            info["env_steps_per_s"] = cfg.steps_per_iteration / seconds
        else:
            info["update_ms"] = seconds / updates * 1e3
    benchmark.extra_info.update(info)
