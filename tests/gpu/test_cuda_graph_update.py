"""On a GPU: the torch update step compiled against the same step eager, and whole iterations with each
phase captured as a CUDA graph (on_torch/cuda_graph.py; what the trainer runs on a GPU) against eager
iterations, on ToyPointMass.

The step comparison: both trainers start from one state (deep copies) and take the same minibatches and
noise, a different one per step, several steps in a row, keeping every step's outputs until the end.
The iteration comparison: from one seed, 5 iterations (the phases warm up for 2 calls, are captured at the
third, and replayed after), metrics and parameters compared the same way. On a CPU the capture is emulated
(tests/on_torch/test_graph_capture_emulated.py); this is the real one.

Tolerance (float32 matmuls on both sides): inductor fuses elementwise chains and reorders reductions, so the
two differ by float32 rounding per op, which a few Adam steps amplify (an early Adam step is close to
lr * sign(g), and g's rounding can flip a tiny component's sign). The bar: the parameters differ by under
1e-3 of how far the steps moved them, and each metric agrees to 1e-3 relative (1e-5 absolute near zero).
A skipped or repeated step or a stale input moves the parameters by ~1/STEPS of that (the first test, which
also runs on a CPU, checks that the comparison catches a skipped step and passes two eager runs exactly).
"""

import copy
import dataclasses
import math

import pytest
import torch

from reppo_fast.config import preset_config, validate
from reppo_fast.envs import make_torch_env
from reppo_fast.kernels import bind
from reppo_fast.on_torch.reppo import ALGORITHM as REPPO
from reppo_fast.on_torch.reppo.losses import Batch
from reppo_fast.on_torch.trainer import Trainer

STEPS = 4
PARAM_TOL, METRIC_RTOL, METRIC_ATOL = 1e-3, 1e-3, 1e-5
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="CUDA graphs need a CUDA GPU (torch sees none)")


def _trainer(device: str, kernels: str, compile_: str, graphs: bool | None = None) -> Trainer:
    cfg = preset_config("cpu", "toy", env="ToyPointMass", framework="torch", kernels=kernels,
                        compile=compile_, cuda_graphs=compile_ == "on" if graphs is None else graphs,
                        precision="float32",
                        num_envs=64, num_steps=8, num_epochs=2, num_minibatches=2, num_eval_envs=1,
                        progress=False)
    validate(cfg)
    env = make_torch_env("ToyPointMass", num_envs=cfg.num_envs, device=device)
    return Trainer(cfg, env, env, bind("torch", kernels), REPPO, torch.device(device))


def _batches(trainer: Trainer, count: int) -> list[tuple[Batch, tuple]]:
    """`count` (minibatch, noise) pairs of the trainer's sizes, plausible values (flags ~5 %, returns on the
    support, log_std in range)."""
    cfg, env, dev = trainer.cfg, trainer.env, trainer.device
    rows, act = cfg.num_envs * cfg.num_steps // cfg.num_minibatches, env.action_size
    g = torch.Generator(device=dev).manual_seed(0)

    def normal(*shape):
        return torch.randn(*shape, device=dev, generator=g)

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, device=dev, generator=g)

    return [(Batch(obs=normal(rows, env.obs_size), action=torch.tanh(normal(rows, act)), reward=normal(rows),
                   terminated=uniform(0, 1, rows) < 0.05, truncated=uniform(0, 1, rows) < 0.05,
                   returns=uniform(cfg.reppo.v_min, cfg.reppo.v_max, rows),
                   next_features=normal(rows, cfg.critic_hidden),
                   old_mean=normal(rows, act), old_log_std=uniform(-2.0, 0.5, rows, act)),
             _split(normal(1 + cfg.reppo.kl_samples, rows, act))) for _ in range(count)]


def _split(noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """REPPO's update noise: (the actor's action draw [B, A], the sampled KL's draws [S, B, A])."""
    return noise[0], noise[1:]


def _copy(state):
    """The state with its own networks and optimisers (one deepcopy, so each optimiser keeps pointing at
    its copied parameters)."""
    actor, critic, actor_opt, critic_opt = copy.deepcopy((state.actor, state.critic, state.actor_opt,
                                                          state.critic_opt))
    return dataclasses.replace(state, actor=actor, critic=critic, actor_opt=actor_opt, critic_opt=critic_opt)


def _steps(trainer, state, batches, skip=None) -> list[dict]:
    """Every step's metrics, all kept until the end as the update phase keeps them."""
    return [trainer.update_step(state, mb, noise) for i, (mb, noise) in enumerate(batches) if i != skip]


def _flat(module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).double()


def _mismatches(start, ref_state, ref_metrics, state, metrics) -> list[str]:
    out = []
    for name in ("actor", "critic"):
        moved = (_flat(getattr(ref_state, name)) - _flat(getattr(start, name))).norm()
        off = (_flat(getattr(state, name)) - _flat(getattr(ref_state, name))).norm()
        if not off <= PARAM_TOL * moved:
            out.append(f"{name} parameters differ by {float(off / moved):.2e} of their change "
                       f"{float(moved):.3g}")
    if len(ref_metrics) != len(metrics):
        return out + [f"{len(metrics)} steps' metrics, expected {len(ref_metrics)}"]
    for i, (ref, got) in enumerate(zip(ref_metrics, metrics)):
        for key in ref:
            a, b = float(ref[key]), float(got[key])
            if not math.isclose(a, b, rel_tol=METRIC_RTOL, abs_tol=METRIC_ATOL):
                out.append(f"step {i} {key}: {b!r} vs eager {a!r}")
    return out


def test_the_comparison_passes_equal_runs_and_catches_a_skipped_step():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    trainer = _trainer(device, "reference", "off")
    start = trainer.init_state(0)
    batches = _batches(trainer, STEPS)
    a, b, skipped = _copy(start), _copy(start), _copy(start)
    ma, mb = _steps(trainer, a, batches), _steps(trainer, b, batches)
    assert _mismatches(start, a, ma, b, mb) == []
    found = _mismatches(start, a, ma, skipped, _steps(trainer, skipped, batches, skip=1))
    assert any("parameters differ" in m for m in found), found


@needs_cuda
@pytest.mark.parametrize("kernels", ["reference", "triton"])
def test_compiled_update_steps_match_eager(kernels):
    eager, graphed = _trainer("cuda", kernels, "off"), _trainer("cuda", kernels, "on")
    assert graphed.compiled and graphed.graphs, graphed.describe()
    start = eager.init_state(0)
    batches = _batches(eager, STEPS)
    ref, got = _copy(start), _copy(start)
    ref_metrics, metrics = _steps(eager, ref, batches), _steps(graphed, got, batches)
    torch.cuda.synchronize()
    assert _mismatches(start, ref, ref_metrics, got, metrics) == []


@needs_cuda
@pytest.mark.parametrize("kernels", ["reference", "triton"])
def test_compiled_trainer_iterations_give_finite_metrics(kernels):
    trainer = _trainer("cuda", kernels, "on")
    state = trainer.init_state(0)
    for _ in range(2):  # the second iteration replays every graph the first recorded
        state, metrics = trainer.iteration(state)
        values = {k: float(v) for k, v in metrics.items()}
        assert values and all(math.isfinite(v) for v in values.values()), values


@needs_cuda
@pytest.mark.parametrize("compile_", ["off", "on"])
def test_captured_iterations_match_eager(compile_):
    eager, graphed = _trainer("cuda", "reference", "off", graphs=False), _trainer("cuda", "reference",
                                                                                   compile_, graphs=True)
    assert graphed.graphs and not eager.graphs
    start = eager.init_state(0)
    ref, got = eager.init_state(0), graphed.init_state(0)
    ref_metrics, metrics = [], []
    for _ in range(5):
        ref, m = eager.iteration(ref)
        ref_metrics.append(m)
        got, m = graphed.iteration(got)
        metrics.append(m)
    torch.cuda.synchronize()
    assert graphed._phases.learn.replay is not None  # the update phase was captured and replayed
    assert _mismatches(start, ref, ref_metrics, got, metrics) == []
