"""Learning curves of finished or running runs, side by side:

    python -m reppo_fast.plot RUN_DIR [RUN_DIR ...] [--out curves.png] [--threshold 900]
        [--at 500000 1000000 2000000] [--label-by rpo_epochs]

One row per env. Columns: eval return against env steps, against training wall-clock seconds, and (with
several seeds of a curve) the fraction of runs that are reliably performant (paper section 4.3: reached
the threshold and never fell below it again). Runs of one (algo, framework) are seeds of one curve: the
line is their mean, the band their min..max; `--label-by FIELD` splits them further by config fields (e.g.
RPO's rpo_epochs). `--at STEPS...` prints a table of each curve's eval return (mean, min..max over seeds)
and training wall-clock at those env steps. The paper's returns for the task (docs/algorithms.md
section 8) are marks.
Needs matplotlib (`pip install 'reppo-fast[plot]'`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from reppo_fast.curves import (
    PAPER_RETURNS,
    RunDirError,
    at_steps,
    default_threshold,
    group_runs,
    load_run,
    mean_and_spread,
    reliable_fraction,
    reliable_since,
)


def _draw_env(axes, env, runs, threshold, paper: bool, fields: tuple[str, ...]):
    groups = group_runs(runs, fields)
    for label, members in sorted(groups.items()):
        for ax, x in zip(axes[:2], ("env_steps", "seconds")):
            grid, mean, low, high = mean_and_spread(members, x)
            line, = ax.plot(grid, mean, label=f"{label}, {len(members)} seed(s)")
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
        if len(axes) > 2 and threshold is not None:
            grid = mean_and_spread(members, "env_steps")[0]
            axes[2].plot(grid, reliable_fraction(members, threshold, grid), label=label)
    if paper:
        for algo, marks in PAPER_RETURNS.get(env, {}).items():
            steps, returns = zip(*marks)
            axes[0].scatter(steps, returns, marker="x", color="black", zorder=3)
            for s, r in marks:
                axes[0].annotate(f"paper {algo}", (s, r), fontsize=7, xytext=(3, 3),
                                 textcoords="offset points")
    axes[0].set(title=f"{env}: eval return", xlabel="env steps", ylabel="return")
    axes[1].set(title=f"{env}: eval return", xlabel="training wall-clock (s)", ylabel="return")
    if len(axes) > 2:
        axes[2].set(title=f"reliable performance (tau = {threshold:g})", xlabel="env steps",
                    ylabel="fraction of runs", ylim=(-0.02, 1.02))
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)


def _table(env, runs, steps: list[float], fields: tuple[str, ...]) -> list[str]:
    """One row per curve: at each of `steps`, the eval return's mean (min..max over seeds) and the mean
    training seconds; `-` where a run has not reached that step."""
    header = f"{'curve':<34}" + "".join(f"{f'{s / 1e6:g}M steps':>30}" for s in steps)
    lines = [f"{env}", header]
    for label, members in sorted(group_runs(runs, fields).items()):
        row = f"{label + f' x{len(members)}':<34}"
        for s in steps:
            points = [at_steps(r, s) for r in members]
            if any(p is None for p in points):
                row += f"{'-':>30}"
                continue
            rets, secs = [p[0] for p in points], [p[1] for p in points]
            cell = f"{np.mean(rets):.0f} ({min(rets):.0f}..{max(rets):.0f}) {np.mean(secs):.0f} s"
            row += f"{cell:>30}"
        lines.append(row)
    return lines


def _summary(env, runs, threshold, fields: tuple[str, ...]) -> list[str]:
    lines = []
    for label, members in sorted(group_runs(runs, fields).items()):
        finals = [r.returns[-1] for r in members]
        line = (f"{env} {label}: {len(members)} run(s), final eval return mean "
                f"{sum(finals) / len(finals):.1f} (min {min(finals):.1f}, max {max(finals):.1f})")
        if threshold is not None:
            reliable = [reliable_since(r, threshold) for r in members]
            done = [s for s in reliable if s is not None]
            line += f"; reliably >= {threshold:g}: {len(done)}/{len(members)}"
            if done:
                line += f" (from {min(done):,.0f} env steps at the earliest)"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reppo_fast.plot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (config.json + eval.jsonl)")
    parser.add_argument("--out", type=Path, default=Path("curves.png"), help="PNG to write")
    parser.add_argument("--threshold", type=float, default=None,
                        help="reliable-performance threshold (default: 0.9 x 1000 on DM Control)")
    parser.add_argument("--no-paper", action="store_true", help="leave out the paper's reference returns")
    parser.add_argument("--at", type=float, nargs="+", default=None, metavar="STEPS",
                        help="print each curve's eval return and wall-clock at these env steps")
    parser.add_argument("--label-by", nargs="+", default=(), metavar="FIELD",
                        help="config fields (flat names) that also split runs into curves, e.g. rpo_epochs")
    args = parser.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("error: plotting needs matplotlib: pip install 'reppo-fast[plot]'", file=sys.stderr)
        return 2
    try:
        runs = [load_run(p) for p in args.runs]
    except RunDirError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    by_env: dict[str, list] = {}
    for run in runs:
        by_env.setdefault(run.env, []).append(run)
    fields = tuple(args.label_by)
    several_seeds = any(len(m) > 1 for rs in by_env.values() for m in group_runs(rs, fields).values())
    columns = 3 if several_seeds else 2
    fig, axes = plt.subplots(len(by_env), columns, figsize=(5 * columns, 3.6 * len(by_env)), squeeze=False)
    for row, (env, env_runs) in zip(axes, sorted(by_env.items())):
        threshold = args.threshold if args.threshold is not None else default_threshold(env)
        _draw_env(row, env, env_runs, threshold, not args.no_paper, fields)
        print("\n".join(_summary(env, env_runs, threshold, fields)))
        if args.at:
            print("\n".join(_table(env, env_runs, args.at, fields)))
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
