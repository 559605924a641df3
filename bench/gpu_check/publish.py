"""Where a run's results go, rewritten after every step so that a run killed from outside still leaves them:
the report under bench/results/ (bench/results/dry-run.md for a dry run: ignored by git), and, when $OUT is
set (the device tool brings back what is written under it), the report, bench.json (the benchmarks in
--benchmark-json's layout: `python -m bench.report bench.json` renders them again), facts.json and
logs.tar.gz. At most 8 files, 2 folders down: the device tool's limits on what comes back."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

from bench.gpu_check import report

RESULTS = Path(__file__).resolve().parents[1] / "results"


def report_path(run_dir: Path, dry_run: bool) -> Path:
    if dry_run:
        return RESULTS / "dry-run.md"
    try:
        slug = json.loads((run_dir / "facts.json").read_text())["torch"]["slug"]
    except (OSError, KeyError, json.JSONDecodeError):
        slug = "unknown-device"
    return RESULTS / f"{slug}.md"


def publish(run_dir: Path, target: Path, out_dir: Path | None) -> None:
    bench_json = report.write_benchmark_json(run_dir)
    _write(target, report.render(run_dir))
    if out_dir is None:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    _copy(target, out_dir / target.name)
    for path in (bench_json, run_dir / "facts.json"):
        if path.exists():
            _copy(path, out_dir / path.name)
    tmp = out_dir / "logs.tar.gz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(run_dir.iterdir()):
            tar.add(path, arcname=f"logs/{path.name}")
    os.replace(tmp, out_dir / "logs.tar.gz")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)  # never a half-written report, even if the run is killed right now


def _copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
