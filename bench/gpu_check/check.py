"""The driver: set the process variables, run each step in its box, record how it ended, rewrite the report
after every step, print a short summary last. Exit status 0 only when every step passed."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from bench.gpu_check import boxed, environ, plan, publish, report
from bench.gpu_check.budget import Budget
from bench.gpu_check.stream import VARIABLE

REPO = Path(__file__).resolve().parents[2]
WORK = Path("/tmp/reppo_fast_gpu_check")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check",
                                description="Check and measure the GPU path within a wall-clock budget; "
                                            "docs/gpu_check.md says how to run it on a lent GPU.")
    p.add_argument("--dry-run", action="store_true",
                   help="the same steps on a CPU: tiny shapes, Triton interpreter, ToyPointMass")
    p.add_argument("--budget", type=float,
                   help="wall-clock seconds for the whole run (default 480; dry run 240)")
    p.add_argument("--phases", default="facts,tests,e2e,ops",
                   help="comma list, run in the order given: facts,tests,e2e,ops")
    p.add_argument("--e2e-variants", default=",".join(plan.E2E_VARIANTS),
                   help="bench/e2e_setup.py VARIANTS, e.g. torch-compile+graph (compiled reference) too")
    p.add_argument("--e2e-env", help="end-to-end env (default HumanoidRun; dry run ToyPointMass)")
    p.add_argument("--e2e-rounds", type=int,
                   help="timed rounds per end-to-end measure (default 2; dry run 1)")
    p.add_argument("--ops-k", help="pytest -k for bench/test_ops.py (default: the dmc shape, judged modes)")
    p.add_argument("--tests", help="comma list of test paths for the tests phase")
    p.add_argument("--report", type=Path, help="report path (default bench/results/<gpu>.md, dry-run.md)")
    p.add_argument("--out", type=Path, default=os.environ.get("OUT") or None,
                   help="also copy the report, bench.json, facts.json and logs.tar.gz here (default $OUT)")
    p.add_argument("--work", type=Path, default=WORK, help="run directory for logs and streams (emptied)")
    return p


def _options(args) -> plan.Options:
    from bench.e2e_setup import VARIANTS

    variants = tuple(v for v in args.e2e_variants.split(",") if v)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--e2e-variants: unknown {unknown}; choose among {', '.join(VARIANTS)}")
    mode = "dry" if args.dry_run else "gpu"
    budget = args.budget or plan.DEFAULT_BUDGET[mode]
    if budget < plan.REPORT_SECONDS + 30:
        raise SystemExit(f"--budget {budget:g}: give at least {plan.REPORT_SECONDS + 30:g} seconds")
    return plan.Options(dry_run=args.dry_run, budget=budget,
                        python=sys.executable, run_dir=args.work, phases=tuple(args.phases.split(",")),
                        e2e_variants=variants, e2e_env=args.e2e_env, e2e_rounds=args.e2e_rounds,
                        ops_k=args.ops_k, tests=tuple(args.tests.split(",")) if args.tests else None)


def _fresh(run_dir: Path) -> None:
    """An empty run directory; only ever removes an earlier run's (it holds meta.json)."""
    if run_dir.exists() and any(run_dir.iterdir()):
        if not (run_dir / "meta.json").exists():
            raise SystemExit(f"--work {run_dir}: holds files but no earlier run; choose another directory")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    opts = _options(args)
    try:
        steps = plan.steps(opts)
    except ValueError as err:
        raise SystemExit(f"--phases: {err}") from None
    _fresh(opts.run_dir)
    budget = Budget(opts.budget)
    command = (os.environ.get("GPU_CHECK_COMMAND")
               or shlex.join(["python", "-m", "bench.gpu_check", *(sys.argv[1:] if argv is None else argv)]))
    meta = {"command": command, "dry_run": opts.dry_run, "budget": opts.budget, "elapsed": 0.0,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "finished": False,
            "planned": [s.name for s in steps], "environment": environ.configure(opts.dry_run)}
    (opts.run_dir / "meta.json").write_text(json.dumps(meta, indent=1))  # marks the directory as a run's
    signal.signal(signal.SIGTERM, _interrupt)  # the device tool's timeout: still record and publish
    statuses = []
    try:
        for i, step in enumerate(steps):
            box = budget.box(sum(s.share for s in steps[i + 1:]) + plan.REPORT_SECONDS)
            print(f"[{budget.elapsed():5.0f} s] {step.name}: box {box:.0f} s", flush=True)
            env = {**os.environ, VARIABLE: str(opts.run_dir / f"{step.slug}.jsonl")}
            outcome = boxed.run(list(step.argv), box, opts.run_dir / f"{step.slug}.log", env=env, cwd=REPO)
            statuses.append(outcome.status)
            _record(opts.run_dir, step, outcome)
            print(f"[{budget.elapsed():5.0f} s] {step.name}: {outcome.status} in {outcome.seconds:.0f} s "
                  f"{outcome.note}", flush=True)
            meta["elapsed"] = budget.elapsed()
            _publish(opts, args, meta)
            if outcome.interrupted:
                raise KeyboardInterrupt(outcome.note)
        meta["finished"] = True
    except KeyboardInterrupt as err:
        meta["stopped"] = str(err)
        print(f"interrupted ({err}): publishing what finished", flush=True)
    meta["elapsed"] = budget.elapsed()
    target = _publish(opts, args, meta)
    print("\n" + report.summary(opts.run_dir))
    print(f"\nreport: {target}" + (f" (and {args.out}/)" if args.out else ""))
    return 0 if meta["finished"] and all(s == "ok" for s in statuses) else 1


def _record(run_dir: Path, step: plan.Step, outcome: boxed.Outcome) -> None:
    line = {"phase": step.phase, "name": step.name, "argv": list(step.argv), "log": f"{step.slug}.log",
            "stream": f"{step.slug}.jsonl", **outcome.to_dict()}
    with open(run_dir / "steps.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


def _publish(opts: plan.Options, args, meta: dict) -> Path:
    (opts.run_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    target = args.report or publish.report_path(opts.run_dir, opts.dry_run)
    publish.publish(opts.run_dir, target, args.out)
    return target
