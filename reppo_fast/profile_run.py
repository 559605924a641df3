"""Profile a few training iterations on the torch path and write a short markdown summary:

    python -m reppo_fast.profile_run --env CartpoleBalance --preset cpu --framework torch \\
        --iterations 5 --warmup 2 --out profiles/cartpole-cpu-eager.md [any train option]

Runs `--warmup` iterations (compilation, autotuning, CUDA-graph capture), then `--iterations` under
torch.profiler with the NVTX ranges also recorded as profiler ranges. The summary gives the time per range
per iteration, the top kernels inside each range (CUDA kernels on a GPU; ATen ops on a CPU, where there
are no kernels) and the kernel launches (on a CPU: ops dispatched) per update step, the number that
separates eager, compiled and Triton runs. The JAX path is profiled with Nsight or the JAX profiler
instead (profiles/README.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

from reppo_fast.config import ConfigError
from reppo_fast.profiling import PHASES


def _ranges_of(events, name_ok):
    """{range name: [its events]} for the record_function ranges whose name passes name_ok."""
    out = defaultdict(list)
    for evt in events:
        if name_ok(evt.name):
            out[evt.name].append(evt)
    return out


def _kernels_under(evt, cuda: bool) -> Counter:
    """Time (us) per kernel name launched under evt (CUDA), or per ATen op run directly under it (CPU)."""
    times: Counter = Counter()
    stack = [evt]
    while stack:
        node = stack.pop()
        if cuda:
            for kernel in node.kernels:
                times[kernel.name] += kernel.duration
        elif node is not evt and node.name.startswith("aten::"):
            times[node.name] += node.self_cpu_time_total
        stack.extend(node.cpu_children)
    return times


def _launches_under(evt, cuda: bool) -> int:
    count, stack = 0, [evt]
    while stack:
        node = stack.pop()
        count += len(node.kernels) if cuda else int(node is not evt and node.name.startswith("aten::"))
        stack.extend(node.cpu_children)
    return count


def summarise(events, iterations: int, updates_per_iteration: int, cuda: bool, header: str,
              top: int = 5) -> str:
    """Markdown summary of profiler events covering `iterations` iterations."""
    wanted = set(PHASES) | {"capture"}
    ranges = _ranges_of(events, lambda n: n in wanted or n.startswith("op/"))
    unit = "kernels" if cuda else "ATen ops (a CPU runs no kernels)"
    lines = [header, "", f"| range | ms per iteration | calls per iteration | top {unit}, ms per iteration |",
             "| --- | ---: | ---: | --- |"]
    for name in sorted(ranges, key=lambda n: (n not in PHASES, n)):
        evts = ranges[name]
        total_ms = sum(e.cpu_time_total for e in evts) / 1000 / iterations
        kernels: Counter = Counter()
        for e in evts:
            kernels.update(_kernels_under(e, cuda))
        tops = ", ".join(f"`{k[:60]}` {v / 1000 / iterations:.2f}" for k, v in kernels.most_common(top))
        lines.append(f"| `{name}` | {total_ms:.2f} | {len(evts) / iterations:g} | {tops} |")
    update = ranges.get("update", [])
    if update:
        launches = sum(_launches_under(e, cuda) for e in update) / (iterations * updates_per_iteration)
        what = "kernel launches" if cuda else "ATen ops dispatched"
        lines += ["", f"{what} per update step (critic + actor): {launches:.0f}"]
    return "\n".join(lines) + "\n"


def _commit() -> str:
    """The checkout's short commit hash, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reppo_fast.profile_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=5, help="profiled iterations")
    parser.add_argument("--warmup", type=int, default=3,
                        help="iterations before profiling starts (the torch phases are captured as CUDA "
                             "graphs at the third)")
    parser.add_argument("--out", type=Path, default=None, help="markdown summary to write (default: print)")
    args, train_argv = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    from reppo_fast.runner import _build
    from reppo_fast.train import parse_args

    try:
        if args.iterations <= 0 or args.warmup < 0:
            raise ConfigError("--iterations must be positive and --warmup >= 0")
        cfg, _ = parse_args([*train_argv, "--no-progress"])
        if cfg.framework != "torch":
            raise ConfigError("profile_run profiles the torch path (--framework torch); profile the JAX path "
                              "with Nsight Systems or the JAX profiler (profiles/README.md)")
        cfg, trainer, kernels, *_ = _build(cfg.replace(profile=True))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import torch

    cuda = trainer.device.type == "cuda"
    state = trainer.init_state(cfg.seed)
    for _ in range(args.warmup):
        state, _ = trainer.iteration(state)
    activity = torch.profiler.ProfilerActivity
    activities = [activity.CPU, activity.CUDA] if cuda else [activity.CPU]
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.iterations):
            state, metrics = trainer.iteration(state)
        float(next(iter(metrics.values())))  # wait for the device before the profile closes
    device = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores)"
    header = (f"# {cfg.env}, {cfg.algo}, torch, {device}\n\n"
              f"kernels {dict(kernels.bound)}, compiled {trainer.compiled}, CUDA graphs {trainer.graphs}, "
              f"{cfg.num_envs} envs x {cfg.num_steps} steps, {cfg.num_epochs} x {cfg.num_minibatches} "
              "updates; "
              f"{args.iterations} iterations after {args.warmup} warm-up, torch {torch.__version__}, "
              f"commit {_commit()}")
    text = summarise(prof.events(), args.iterations, cfg.num_epochs * cfg.num_minibatches, cuda, header)
    if args.out is None:
        print(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
