"""Reading what the steps left in the run directory: the JSON lines of each pytest step (stream.py) and
of the driver (steps.jsonl), tolerating a last line cut short by a kill."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


def read_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line half-written when its writer was killed
    return out


@dataclass
class Tests:
    """The outcomes of one pytest step."""

    counts: Counter = field(default_factory=Counter)  # passed, failed, skipped, error (setup/teardown)
    failures: list[str] = field(default_factory=list)  # "nodeid: message"
    skips: Counter = field(default_factory=Counter)  # reason -> how many tests
    unfinished: list[str] = field(default_factory=list)  # started, never reported (where a cut stopped)

    def line(self) -> str:
        parts = [f"{n} {k}" for k, n in sorted(self.counts.items())]
        if self.unfinished:
            parts.append(f"cut during {', '.join(self.unfinished)}")
        return ", ".join(parts) or "no test finished"


def tests(events: list[dict]) -> Tests:
    result, started, reported = Tests(), [], set()
    for e in events:
        if e.get("event") == "start":
            started.append(e["test"])
        elif e.get("event") == "report":
            reported.add(e["test"])
            kind = e["outcome"] if e["when"] == "call" or e["outcome"] == "skipped" else "error"
            result.counts[kind] += 1
            if e["outcome"] == "failed":
                result.failures.append(f"{e['test']} ({e['when']}): {e['message']}")
            elif e["outcome"] == "skipped":
                result.skips[e["message"]] += 1
        elif e.get("event") == "stream-error":  # a benchmark that ran but could not be recorded
            result.counts["unrecorded benchmarks"] += 1
            result.failures.append(f"{e['test']} (benchmark record): {e['message']}")
    result.unfinished = [t for t in dict.fromkeys(started) if t not in reported]
    return result


def benchmarks(run_dir: Path) -> list[dict]:
    """Every "bench" event of every stream in the run, in the order the steps ran."""
    steps = read_lines(run_dir / "steps.jsonl")
    return [e for s in steps for e in read_lines(run_dir / s["stream"]) if e.get("event") == "bench"]


def benchmark_json(run_dir: Path, commit: str, when: str) -> dict:
    """The run's benchmarks in --benchmark-json's layout, which bench.results reads. Where the tree has
    no .git, bench/machine.py records commit "unknown": the check's own commit (facts.py) is filled in."""
    out = []
    for e in benchmarks(run_dir):
        info = dict(e["extra_info"])
        if info.get("commit") in (None, "unknown"):
            info["commit"] = commit
        out.append({**{k: v for k, v in e.items() if k not in ("event", "t", "test")}, "extra_info": info})
    return {"datetime": when, "benchmarks": out}
