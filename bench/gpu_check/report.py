"""The check's markdown report, rebuilt from the run directory after every step: what ran and how it ended,
the machine, test failures and skip reasons, then the benchmark report of bench/report.py (targets met or
missed with their ratios, every op and end-to-end number) over the benchmarks that finished."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report as bench_report
from bench import targets
from bench.gpu_check import streams
from bench.results import load

STATUS = {"ok": "ok", "failed": "**failed**", "cut": "**cut**", "not run": "**not run**"}
HOW_TO_READ = """## Reading this report

- Each step ran in a time box carved from the budget. **cut**: it ran past its box and was stopped; what it
  finished is counted above and its benchmarks are in the tables, and "cut during" names the test it was in.
  **not run**: the budget was spent before it. **failed**: non-zero exit (a failed test, or a crash: its log).
- Logs: `logs.tar.gz` next to this report in $OUT, one `<step>.log` and `<step>.jsonl` per step.
- To rerun a part: `bash scripts/gpu_check.sh --phases e2e --e2e-variants torch-eager --budget 150`.
"""


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _steps(run_dir: Path, meta: dict) -> tuple[list[str], list[dict]]:
    done = {s["name"]: s for s in streams.read_lines(run_dir / "steps.jsonl")}
    lines = ["## Steps", "", "| step | status | seconds | box (s) | outcome |", "|---|---|---|---|---|"]
    for name in meta.get("planned", []):
        step = done.get(name)
        if step is None:
            ended = meta.get("finished") or meta.get("stopped")
            state = "not reached" if ended else "pending (or the run was killed)"
            lines.append(f"| {name} | {state} | | | |")
            continue
        ran_tests = step["phase"] != "facts" and step["status"] != "not run"
        outcome = streams.tests(streams.read_lines(run_dir / step["stream"])).line() if ran_tests else ""
        note = "; ".join(x for x in (outcome, step["note"]) if x)
        lines.append(f"| {name} | {STATUS[step['status']]} | {step['seconds']:.0f} | {step['box']:.0f} "
                     f"| {note} |")
    return lines + [""], list(done.values())


def _machine(facts: dict) -> list[str]:
    if not facts:
        return ["## Machine", "", "No facts (the facts step did not finish).", ""]
    lines = ["## Machine", ""]
    for name, value in facts.items():
        if name == "host":
            value = {k: v for k, v in value.items() if k != "environment"}
        shown = {k: v for k, v in value.items() if k != "where" and v is not None}
        lines.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    env = facts.get("host", {}).get("environment")
    if env:
        lines.append("- environment: " + ", ".join(f"`{k}={v}`" for k, v in sorted(env.items())))
    return lines + [""]


def _tests(run_dir: Path, steps: list[dict]) -> list[str]:
    lines = []
    for step in steps:
        if step["phase"] == "facts":
            continue
        result = streams.tests(streams.read_lines(run_dir / step["stream"]))
        if result.failures:
            lines += [f"## Failures: {step['name']}", ""] + [f"- `{f[:600]}`" for f in result.failures[:40]]
            lines += [f"- and {len(result.failures) - 40} more" if len(result.failures) > 40 else "", ""]
        if result.skips:
            lines += [f"## Skipped: {step['name']}", ""]
            lines += [f"- {n} x {reason[:300]}" for reason, n in result.skips.most_common(20)] + [""]
    return lines


def _benchmarks(run_dir: Path) -> list[str]:
    path = run_dir / "bench.json"
    if not path.exists() or not json.loads(path.read_text())["benchmarks"]:
        return ["## Benchmarks", "", "No benchmark finished.", ""]
    text = bench_report.render(load(path))
    return ["#" + line if line.startswith("#") else line for line in text.splitlines()] + [""]


def write_benchmark_json(run_dir: Path) -> Path:
    meta, facts = _json(run_dir / "meta.json"), _json(run_dir / "facts.json")
    commit = facts.get("commit", {}).get("commit", "unknown")
    path = run_dir / "bench.json"
    path.write_text(json.dumps(streams.benchmark_json(run_dir, commit, meta.get("started", "")), indent=1))
    return path


def render(run_dir: Path) -> str:
    meta, facts = _json(run_dir / "meta.json"), _json(run_dir / "facts.json")
    device = facts.get("torch", {}).get("device", "unknown device")
    device = "dry run (CPU)" if meta.get("dry_run") else device
    commit = facts.get("commit", {})
    step_lines, steps = _steps(run_dir, meta)
    ok = sum(s["status"] == "ok" for s in steps)
    head = [f"# reppo_fast GPU check: {device}", "",
            f"- commit: `{commit.get('commit', 'unknown')}` "
            f"({commit.get('source', 'the facts step did not finish')})",
            f"- command: `{meta.get('command', '?')}`",
            f"- started {meta.get('started', '?')}, budget {meta.get('budget', 0):.0f} s, "
            f"{meta.get('elapsed', 0):.0f} s used; {ok} of {len(meta.get('planned', []))} steps ok"
            + (f"; stopped from outside ({meta['stopped']})" if meta.get("stopped") else ""),
            "- set for every step: "
            + ", ".join(f"`{k}={v}`" for k, v in meta.get("environment", {}).items()),
            ""]
    body = _machine(facts) + _tests(run_dir, steps) + _benchmarks(run_dir)
    return "\n".join(head + step_lines + body + [HOW_TO_READ])


def summary(run_dir: Path) -> str:
    """The steps table and the targets, short enough to read at the end of the command's output."""
    meta = _json(run_dir / "meta.json")
    lines = _steps(run_dir, meta)[0]
    path = run_dir / "bench.json"
    results = load(path) if path.exists() and json.loads(path.read_text())["benchmarks"] else None
    if results is not None and results.on_gpu:
        verdicts = targets.evaluate(results)
        judged = [v for v in verdicts if v.met is not None]
        lines += [f"Targets: {sum(v.met for v in judged)} of {len(judged)} measured met", ""]
        lines += [f"- {bench_report.STATUS[v.met]}: {v.target}: {v.measured}" for v in verdicts]
    return "\n".join(lines)
