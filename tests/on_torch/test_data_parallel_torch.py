"""Data parallelism on the torch path with two gloo processes on the CPU (on_torch/data_parallel.py).

Equivalence: two ranks holding halves of a minibatch step the parameters exactly as one process holding all
of it (the oracle: the single-process computation on the concatenation). The launcher tests run
`torchrun --nproc_per_node 2` end to end: one writer, exact resume after a SIGKILL, learning.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from reppo_fast.checkpoint import list_checkpoints, load_checkpoint
from reppo_fast.config import Config
from reppo_fast.kernels import bind
from reppo_fast.on_torch.common import (
    NormState,
    guarded_step,
    norm_init,
    norm_merge,
    norm_pool,
    norm_update,
    pooled_mean_std,
)
from reppo_fast.on_torch.data_parallel import SINGLE, DataParallel, rank_seed
from reppo_fast.on_torch.trainer import make_optimizer
from reppo_fast.profiling import NO_RANGES

pytestmark = pytest.mark.xdist_group("data_parallel_torch")  # its module fixture is built once, on one worker

B, O, A = 32, 4, 2
KERNELS = bind("torch", "reference")
ENV = SimpleNamespace(obs_size=O, action_size=A)


def _reppo_case():
    from reppo_fast.on_torch.reppo import ALGORITHM, nets
    from reppo_fast.on_torch.reppo.losses import Batch

    cfg = Config().replace(framework="torch", actor_hidden=16, critic_hidden=16, num_bins=21, v_min=-10.0,
                           v_max=10.0, kl_samples=4, kl_target=0.05)
    torch.manual_seed(0)
    actor, critic = ALGORITHM.init_networks(cfg, ENV, KERNELS)
    batches, noises = [], []
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        obs = torch.randn(B, O, generator=g)
        with torch.no_grad():
            old_mean, old_log_std = nets.actor_apply(actor.net, obs)
        old_mean = old_mean + 0.3 * torch.randn(B, A, generator=g)
        batches.append(Batch(obs, torch.tanh(torch.randn(B, A, generator=g)), torch.randn(B, generator=g),
                             torch.rand(B, generator=g) < 0.2, torch.rand(B, generator=g) < 0.2,
                             3.0 * torch.randn(B, generator=g),
                             torch.randn(B, cfg.critic_hidden, generator=g), old_mean, old_log_std))
        noises.append(ALGORITHM.update_noise(g, B, A, cfg))
    return ALGORITHM, cfg, actor, critic, batches, noises


def _ppo_case():
    from reppo_fast.on_torch.ppo import ALGORITHM
    from reppo_fast.on_torch.ppo import networks as nets
    from reppo_fast.on_torch.ppo.losses import PpoBatch, gaussian_log_prob

    cfg = Config().replace(framework="torch", algo="ppo", actor_hidden=16, critic_hidden=16,
                           critic_hidden_blocks=2, normalize_advantage=True, entropy_coef=0.01)
    torch.manual_seed(0)
    actor, critic = ALGORITHM.init_networks(cfg, ENV, KERNELS)
    batches, noises = [], []
    g = torch.Generator().manual_seed(2)
    first = torch.arange(B) < B // 2
    for _ in range(3):
        obs = torch.randn(B, O, generator=g)
        with torch.no_grad():
            mean, log_std = nets.actor_apply(actor, obs)
            raw = mean + log_std.exp() * torch.randn(B, A, generator=g)
            log_prob = gaussian_log_prob(mean, log_std, raw) + 0.3 * torch.randn(B, generator=g)
        # The halves' advantages differ in mean and spread: per-rank normalisation would change them.
        advantage = torch.where(first, 1.0, 4.0) * torch.randn(B, generator=g) + torch.where(first, -2.0, 3.0)
        batches.append(PpoBatch(obs, raw, log_prob, advantage, torch.randn(B, generator=g)))
        noises.append(ALGORITHM.update_noise(g, B, A, cfg))
    return ALGORITHM, cfg, actor, critic, batches, noises


def _half(x, rank, world, dim=0):
    if x is None:
        return None
    if isinstance(x, tuple):
        return type(x)(*(_half(v, rank, world, dim) for v in x)) if hasattr(x, "_fields") else tuple(
            _half(v, rank, world, dim if i == 0 else 1) for i, v in enumerate(x))
    return x.chunk(world, dim=dim)[rank]


def _run_updates(case, dp, rank=0, world=1):
    """Three update steps (rank's half of each minibatch when world > 1); returns the state dicts and the
    last step's metrics reduced over the group."""
    from reppo_fast.on_torch.common import reduce_metrics

    algo, cfg, actor, critic, batches, noises = case()
    cpu = torch.device("cpu")
    state = SimpleNamespace(actor=actor, critic=critic, actor_opt=make_optimizer(cfg, actor, cpu),
                            critic_opt=make_optimizer(cfg, critic, cpu))
    metrics = None
    for mb, noise in zip(batches, noises):
        if world > 1:
            # REPPO's noise: ([B, A], [S, B, A]): the batch dim is 0, then 1; PPO's: [B, A].
            mb, noise = _half(mb, rank, world), _half(noise, rank, world)
        metrics = algo.update_step(state, mb, noise, KERNELS, cfg, NO_RANGES, dp)
    metrics = reduce_metrics({k: torch.as_tensor(v) for k, v in metrics.items()}, dp)
    return ({**{f"actor.{k}": v for k, v in actor.state_dict().items()},
             **{f"critic.{k}": v for k, v in critic.state_dict().items()}},
            {k: float(v) for k, v in metrics.items()})


def _stats_case(rank, world, dp):
    g = torch.Generator().manual_seed(3)
    before = 5.0 + 2.0 * torch.randn(40, 3, generator=g)
    obs = torch.randn(6, 8, 3, generator=g) * torch.tensor([1.0, 3.0, 0.5]) + torch.where(
        torch.arange(8)[None, :, None] < 4, -1.0, 2.0)
    adv = torch.cat([torch.randn(16, generator=g) * 0.5 - 3.0, torch.randn(16, generator=g) * 4.0 + 10.0])
    start = norm_update(norm_init(3), before)
    seen = norm_init(3)
    for t in range(obs.shape[0]):
        seen = norm_update(seen, obs[t].chunk(world, dim=0)[rank])
    merged = norm_merge(start, norm_pool(seen, dp))
    mean, std = pooled_mean_std(adv.chunk(world)[rank], dp)
    return merged, (mean, std), (before, obs, adv)


def _guard_case(rank, dp):
    """A step whose loss is NaN on rank 1 alone: (parameter after, skipped) on this rank."""
    param = torch.nn.Parameter(torch.zeros(3))
    module = torch.nn.Module()
    module.p = param

    def step():
        with torch.no_grad():
            param.add_(1.0)
        return {"loss": torch.tensor(float("nan") if rank == 1 else 0.5)}

    metrics = guarded_step(step, [module], [], dp)
    return param.detach().clone(), float(metrics["update/skipped"])


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        dp = DataParallel(world, rank, rank)
        results = {name: _run_updates(case, dp, rank, world) for name, case in
                   (("reppo", _reppo_case), ("ppo", _ppo_case))}
        merged, moments, _ = _stats_case(rank, world, dp)
        results["stats"] = (tuple(merged), moments)
        results["guard"] = _guard_case(rank, dp)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """What each of two gloo ranks computed (one spawn for every equivalence check)."""
    out = tmp_path_factory.mktemp("dp")
    mp.start_processes(_worker, args=(2, str(out / "init"), str(out)), nprocs=2, start_method="spawn")
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("name,case", [("reppo", _reppo_case), ("ppo", _ppo_case)])
def test_update_steps_on_two_ranks_equal_one_process_on_the_whole_minibatch(two_ranks, name, case):
    want, want_metrics = _run_updates(case, SINGLE)
    for rank in range(2):
        got, got_metrics = two_ranks[rank][name]
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=2e-5, atol=2e-6, msg=f"rank {rank}: {k}")
        for k in want_metrics:
            np.testing.assert_allclose(got_metrics[k], want_metrics[k], rtol=1e-4, atol=1e-5, err_msg=k)
    # The check can fail: one process stepping on a half alone lands elsewhere.
    algo, cfg, actor, critic, batches, noises = case()
    halves = (algo, cfg, actor, critic, [_half(b, 0, 2) for b in batches], [_half(n, 0, 2) for n in noises])
    alone = _run_updates(lambda: halves, SINGLE)[0]
    assert max(float((alone[k] - want[k]).abs().max()) for k in want) > 1e-4


def test_normaliser_and_advantage_statistics_pooled_over_two_ranks(two_ranks):
    one, (mean, std), (before, obs, adv) = _stats_case(0, 1, SINGLE)
    x = torch.cat([before, obs.reshape(-1, 3)]).double()
    oracle = NormState(x.mean(0), x.var(0, unbiased=False), torch.tensor(float(len(x)), dtype=torch.float64))
    for rank in range(2):
        merged, (got_mean, got_std) = two_ranks[rank]["stats"]
        for got, want in zip(merged, oracle):
            torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got_mean.double(), adv.double().mean(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got_std.double(), adv.double().std(unbiased=False), rtol=1e-5, atol=1e-5)


def test_a_step_non_finite_on_one_rank_is_skipped_on_both(two_ranks):
    """Replicas stay equal: rank 0's own step was finite, but rank 1's was not, so both put it back. (One
    rank alone would have kept it: the check can fail.)"""
    for rank in range(2):
        param, skipped = two_ranks[rank]["guard"]
        assert skipped == 1.0 and torch.equal(param, torch.zeros(3)), rank
    alone, skipped = _guard_case(0, SINGLE)
    assert skipped == 0.0 and torch.equal(alone, torch.ones(3))


def test_rank_seeds_are_distinct_across_ranks_and_nodes():
    # 4 nodes x 8 local ranks: the global rank is node * 8 + local rank; a seed depending on the local rank
    # alone would repeat on every node.
    seeds = [rank_seed(7, node * 8 + local) for node in range(4) for local in range(8)]
    assert len(set(seeds)) == len(seeds)
    assert seeds[0] == 7  # rank 0 is the plain run
    assert rank_seed(7, 1) != rank_seed(8, 1) and all(0 <= s < 2**32 for s in seeds)
    assert len({rank_seed(s, 1) for s in range(1000)} | set(range(1000))) == 2000  # no collision with seeds


# --- torchrun, end to end ------------------------------------------------------------------------------

TINY = ["--env", "ToyPointMass", "--framework", "torch", "--preset", "cpu", "--num-envs", "16",
        "--num-steps", "8", "--num-epochs", "2", "--num-minibatches", "2", "--actor-hidden", "16",
        "--critic-hidden", "16", "--num-bins", "21", "--num-eval-envs", "4", "--eval-interval", "5",
        "--checkpoint-interval", "4", "--no-progress"]


def _torchrun(args, **kw):
    """torchrun --standalone (a free port on this host) with two CPU ranks."""
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node", "2", "-m", "reppo_fast.train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _descendants(pid: int) -> list[int]:
    """Every process below pid (torchrun starts the ranks in sessions of their own: killpg misses them)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _finish(proc, timeout=900):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-5000:]
    return out


def _records(path, drop=("time/iteration_s", "time/elapsed_s", "time/env_steps_per_s", "wall_time")):
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in path.read_text().splitlines()]


def test_torchrun_two_ranks_write_once_and_resume_exactly_after_a_kill(tmp_path):
    iterations, steps = 40, 40 * 16 * 8
    full = tmp_path / "full"
    out = _finish(_torchrun([*TINY, "--total-steps", str(steps), "--run-dir", str(full)]))
    # Rank 0 alone writes: one line per iteration, one TensorBoard file, one "done" line.
    assert [r["iteration"] for r in _records(full / "metrics.jsonl")] == list(range(1, iterations + 1))
    assert [r["iteration"] for r in _records(full / "eval.jsonl")] == list(range(5, iterations + 1, 5))
    assert len(list((full / "tb").iterdir())) == 1
    assert out.count("done: ") == 1 and out.count("run dir: ") == 1
    meta = json.loads((full / "meta.json").read_text())
    assert meta["world_size"] == 2 and "SeedSequence" in meta["seeds"]

    part = tmp_path / "part"
    proc = _torchrun([*TINY, "--total-steps", str(steps), "--run-dir", str(part)])
    deadline = time.time() + 600
    while not (part / "checkpoints" / "ckpt_00000008.npz").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    for pid in [proc.pid, *_descendants(proc.pid)]:  # torchrun and both ranks, as a lost node would
        os.kill(pid, signal.SIGKILL)
    proc.communicate()
    killed_at = load_checkpoint(list_checkpoints(part / "checkpoints")[-1])[1]["iteration"]
    assert killed_at < iterations
    _finish(_torchrun(["--resume", str(part), "--no-progress"]))
    assert _records(part / "metrics.jsonl") == _records(full / "metrics.jsonl")
    want, _ = load_checkpoint(list_checkpoints(full / "checkpoints")[-1])
    got, _ = load_checkpoint(list_checkpoints(part / "checkpoints")[-1])
    assert got.keys() == want.keys() and "rank1.env.obs" in got
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)

    # On one rank (no launcher) the run goes on from the same checkpoint with fresh episodes, and says so.
    proc = subprocess.run([sys.executable, "-m", "reppo_fast.train", "--resume", str(part),
                           "--total-steps", str(steps + 4 * 16 * 8), "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "written by 2 rank(s), this run has 1" in proc.stdout
    arrays, meta = load_checkpoint(list_checkpoints(part / "checkpoints")[-1])
    assert meta["iteration"] == iterations + 4 and "env.obs" in arrays and "rank1.env.obs" not in arrays


def test_torchrun_sigterm_stops_both_ranks_at_one_iteration_with_a_checkpoint(tmp_path):
    """A preemption's SIGTERM reaches torchrun, which passes it on to the ranks: they agree on the iteration
    to stop after, write one checkpoint holding both ranks' envs, and the run resumes to its end."""
    iterations, steps = 40, 40 * 16 * 8
    part = tmp_path / "sig"
    proc = _torchrun([*TINY, "--checkpoint-interval", "1000", "--total-steps", str(steps), "--run-dir",
                      str(part)])
    deadline = time.time() + 600
    while not (part / "metrics.jsonl").exists() or len((part / "metrics.jsonl").read_text().splitlines()) < 3:
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be signalled"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=600)
    done = [r["iteration"] for r in _records(part / "metrics.jsonl")]
    assert done == list(range(1, done[-1] + 1)) and done[-1] < iterations
    assert out.count(f"stopped by SIGTERM after iteration {done[-1]}; checkpoint saved") == 1, out[-3000:]
    arrays, meta = load_checkpoint(list_checkpoints(part / "checkpoints")[-1])
    assert meta["iteration"] == done[-1] and "rank1.env.obs" in arrays
    _finish(_torchrun(["--resume", str(part), "--no-progress"]))
    assert [r["iteration"] for r in _records(part / "metrics.jsonl")] == list(range(1, iterations + 1))


@pytest.mark.slow
def test_cartpole_balance_learns_on_two_ranks_like_on_one(tmp_path):
    """The learning test's threshold (on_jax/test_learning.py: 900, seeds 0, 1, 2 in turn) on two torch
    ranks with the cpu preset."""
    tried = {}
    for seed in range(3):
        run_dir = tmp_path / f"cartpole{seed}"
        _finish(_torchrun(["--env", "CartpoleBalance", "--framework", "torch", "--preset", "cpu", "--seed",
                           str(seed), "--run-dir", str(run_dir), "--no-progress"]), timeout=3600)
        tried[seed] = [e["eval/return"] for e in _records(run_dir / "eval.jsonl")]
        if max(tried[seed]) >= 900:
            return
    raise AssertionError(f"no seed reached an eval return of 900 on two ranks: {tried}")
