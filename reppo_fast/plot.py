"""Learning curves of finished or running runs, side by side:

    python -m reppo_fast.plot RUN_DIR [RUN_DIR ...] [--out curves.png] [--threshold 900]

One row per env. Columns: eval return against env steps, against training wall-clock seconds, and (with
several seeds of a curve) the fraction of runs that are reliably performant (paper section 4.3: reached
the threshold and never fell below it again). Runs of one (algo, framework) are seeds of one curve: the
line is their mean, the band their min..max. The paper's returns for the task (docs/algorithms.md
section 8) are marks.
Needs matplotlib (`pip install 'reppo-fast[plot]'`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reppo_fast.curves import (
    PAPER_RETURNS,
    RunDirError,
    default_threshold,
    group_runs,
    load_run,
    mean_and_spread,
    reliable_fraction,
    reliable_since,
)


def _draw_env(axes, env, runs, threshold, paper: bool):
    groups = group_runs(runs)
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


def _summary(env, runs, threshold) -> list[str]:
    lines = []
    for label, members in sorted(group_runs(runs).items()):
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
    several_seeds = any(len(m) > 1 for rs in by_env.values() for m in group_runs(rs).values())
    columns = 3 if several_seeds else 2
    fig, axes = plt.subplots(len(by_env), columns, figsize=(5 * columns, 3.6 * len(by_env)), squeeze=False)
    for row, (env, env_runs) in zip(axes, sorted(by_env.items())):
        threshold = args.threshold if args.threshold is not None else default_threshold(env)
        _draw_env(row, env, env_runs, threshold, not args.no_paper)
        print("\n".join(_summary(env, env_runs, threshold)))
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
