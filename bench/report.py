"""Turn pytest-benchmark JSON into a markdown report: `python -m bench.report RESULTS.json > report.md`.

Per op: median time, GB/s against the bytes a perfectly fused kernel must move, its share of the measured
copy bandwidth, the speed-up over each baseline and the peak memory added. End to end: iteration and
minibatch-update times, env steps/s, speed-ups and peak memory. First, the issue's targets, met or missed.
`--write-table` also records a GPU run's op timings in the table `--kernels auto` reads (kernel_table.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import kernel_table, targets
from bench.op_data import CASES
from bench.results import Result, Results, load
from bench.shapes import SHAPES
from reppo_fast.kernels import fastest

BASELINES = (("torch-eager", "x eager"), ("torch-compile", "x compiled"),
             ("torch-compile+graph", "x compiled+graph"), ("jax-xla", "x XLA"))
ORDER = ("torch-eager", "torch-compile", "torch-compile+graph", "triton", "triton+graph", "jax-xla", "pallas")
E2E_ORDER = ("torch-eager", "torch-compile+graph", "torch-compile+graph+triton", "jax-xla", "jax-pallas")
E2E_BASELINE = {"torch": "torch-eager", "jax": "jax-xla"}
MODE = {"fwd": "forward", "fwdbwd": "forward + backward"}
STATUS = {True: "met", False: "**missed**", None: "not measured"}


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"


def _mib(nbytes: int | None) -> str:
    return "n/a" if nbytes is None else f"{nbytes / 2**20:.1f} MiB"


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(r: Results) -> list[str]:
    m = r.meta
    versions = ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items() if v != "absent")
    lines = [f"# reppo_fast benchmarks: {m.get('device')}", "",
             f"Run {m.get('datetime')} at commit `{m.get('commit')}`; {versions}.", ""]
    if m.get("copy_gbps"):
        lines += [f"Copy bandwidth, the roofline for GB/s: **{m['copy_gbps']:.0f} GB/s**",
                  f"({m.get('copy_method')}).", ""]
    if not r.on_gpu:
        lines += ["**CPU run.** These numbers say nothing about a GPU. Rows marked *(interpreted)* ran in",
                  "Triton's interpreter or Pallas interpret mode: a correctness smoke, not a kernel time.",
                  "CPU timings also depend on what else ran (highest 1-minute load average seen:",
                  f"{m.get('load_avg')}).", ""]
    lines += ["Times are medians over rounds after warm-up (compilation and autotuning excluded), the",
              "device synchronised around each round. GB/s counts the bytes a perfectly fused kernel must",
              "move (bench/traffic.py). `x eager` and the like: the baseline's median over this row's.",
              "Peak memory: added by one call (torch allocator peak; CUDA-graph rows: at capture; JAX:",
              "XLA's memory analysis).", ""]
    return lines


def _targets(r: Results) -> list[str]:
    lines = ["## Targets", ""]
    if not r.on_gpu:
        return lines + ["The targets are GPU targets at the paper's shapes; this run is on a CPU, so they",
                        "are not evaluated.", ""]
    verdicts = targets.evaluate(r)
    judged = [v for v in verdicts if v.met is not None]
    lines += [f"{sum(v.met for v in judged)} of {len(judged)} measured targets met.", "",
              "| target | measured | status | by how much, and why |", "|---|---|---|---|"]
    lines += [_row([v.target, v.measured, STATUS[v.met], v.note]) for v in verdicts]
    return lines + [""]


def _op_row(r: Results, key, res: Result) -> str:
    op, mode, shape, variant = key
    speedups = []
    for baseline, _ in BASELINES:
        base = r.ops.get((op, mode, shape, baseline))
        speedups.append("" if base is None else f"{base.median / res.median:.2f}")
    name = variant + (" *(interpreted)*" if res.info.get("interpreted") else "")
    gbps = "" if res.gbps is None else f"{res.gbps:.1f}"
    share = "" if res.copy_fraction is None else f"{res.copy_fraction:.0%}"
    return _row([shape, name, _ms(res.median), gbps, share, *speedups, _mib(res.peak)])


def _ops(r: Results) -> list[str]:
    lines = ["## Per op", "", "The three ops contain no matmul: `--precision` does not apply to them.",
             "", "Shapes (bench/shapes.py):", ""]
    lines += [f"- `{s.name}`: B={s.B} A={s.A} K={s.K} S={s.S} T={s.T} N={s.N}, {s.source}"
              for s in SHAPES.values()]
    lines.append("")
    for op, mode in CASES:
        keys = sorted((k for k in r.ops if k[:2] == (op, mode)),
                      key=lambda k: (list(SHAPES).index(k[2]), ORDER.index(k[3])))
        if not keys:
            continue
        lines += [f"### {op}, {MODE[mode]}", ""]
        if op == "lambda_returns":
            lines += ["torch-eager is the eager Python loop over T; jax-xla is the jitted `lax.scan`.", ""]
        lines += [_row(["shape", "variant", "median ms", "GB/s", "% copy bw", *(b[1] for b in BASELINES),
                        "peak mem"]), "|" + "---|" * (6 + len(BASELINES))]
        lines += [_op_row(r, k, r.ops[k]) for k in keys] + [""]
    return lines


def _e2e_row(r: Results, env: str, variant: str) -> str | None:
    it, up = r.e2e.get((env, variant, "iteration")), r.e2e.get((env, variant, "update"))
    if it is None and up is None:
        return None
    info = (it or up).info
    cfg, base = info["config"], E2E_BASELINE[info["framework"]]
    precision = cfg.get("precision", cfg.get("matmul_precision", "precision not recorded"))  # older results
    sizes = (f"{cfg['num_envs']}x{cfg['num_steps']}, {cfg['num_epochs']}x{cfg['num_minibatches']} mb, "
             f"H={cfg['critic_hidden']}, {precision} matmuls")
    cells = [env, variant, sizes]
    for res, measure, per in ((it, "iteration", 1), (up, "update", info["updates_per_call"])):
        ref = r.e2e.get((env, base, measure))
        cells.append("" if res is None else _ms(res.median / per))
        if measure == "iteration":
            cells.append("" if res is None else f"{info['steps_per_iteration'] / res.median:,.0f}")
        cells.append("" if res is None or ref is None else f"{ref.median / res.median:.2f}")
    peaks = [x.peak for x in (it, up) if x is not None and x.peak is not None]
    return _row(cells + [_mib(max(peaks)) if peaks else "n/a"])


def _e2e(r: Results) -> list[str]:
    envs = sorted({k[0] for k in r.e2e})
    if not envs:
        return []
    lines = ["## End to end", "",
             "An iteration is rollout + lambda-returns + update phase; a minibatch update (critic + actor",
             "step) is the update phase divided by its epochs x minibatches. `x ref`: speed-up over the same",
             "framework's reference (torch-eager, jax-xla). Peak memory: torch allocator peak since the",
             "trainer was built, or XLA's memory analysis of the jitted call. The networks' matmuls",
             "ran at the precision in the config column (`--precision`; tf32 allows TF32 on the GPU).",
             "",
             _row(["env", "variant", "config", "iteration ms", "env steps/s", "x ref", "minibatch update ms",
                   "x ref", "peak mem"]), "|" + "---|" * 9]
    rows = [_e2e_row(r, env, variant) for env in envs for variant in E2E_ORDER]
    return lines + [row for row in rows if row is not None] + [""]


def render(r: Results) -> str:
    return "\n".join(_header(r) + _targets(r) + _ops(r) + _e2e(r))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+",
                        help="pytest-benchmark JSON files (pytest bench --benchmark-json FILE); several when "
                             "the suite ran in parts, a later file's case replacing an earlier one's")
    parser.add_argument("--write-table", action="store_true",
                        help="also replace this GPU's entry in the table --kernels auto reads (refused for a "
                             "CPU run); commit the table with the report")
    parser.add_argument("--table", type=Path, default=fastest.TABLE,
                        help="the table --write-table writes (default: %(default)s)")
    args = parser.parse_args(argv)
    results = load(*args.results)
    if not results.ops and not results.e2e:
        print(f"{' '.join(args.results)}: no timed results (run with --benchmark-disable?)", file=sys.stderr)
        return 1
    if args.write_table:
        try:
            device = kernel_table.write(results, args.table)
        except ValueError as err:
            print(f"python -m bench.report: {err}", file=sys.stderr)
            return 1
        print(f"kernel table: wrote the entry for {device} to {args.table}", file=sys.stderr)
    sys.stdout.write(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
