"""The summary printed at the end of a run: what it reached, what went wrong on the way, and the commands to
look at it and to continue it. Read from the run directory (metrics.jsonl, eval.jsonl), so that a resumed
run's summary covers every segment, not only the last process's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from reppo_fast.algorithm import SKIPPED_STEPS

NONFINITE = "train/nonfinite"


class Eval(NamedTuple):
    env_steps: int
    mean: float
    stderr: float


class Summary(NamedTuple):
    iterations: int
    env_steps: int
    training_s: float          # the iterations' time, compiles included
    wall_clock_s: float        # training and evaluation, every segment (start-up not included)
    nonfinite: float           # train/nonfinite summed: env steps whose physics blew up
    skipped_steps: float       # update/skipped_steps summed: update steps skipped as non-finite
    final: Eval | None
    best: Eval | None          # the highest mean return; the earliest of equal ones

    @property
    def steps_per_s(self) -> float | None:
        return self.env_steps / self.training_s if self.training_s > 0 else None


def _records(path: Path) -> list[dict]:
    """The JSONL file's records; a line cut off by a killed process is skipped, as the resume does."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def read(run_dir: Path) -> Summary:
    run_dir = Path(run_dir)
    metrics, eval_records = _records(run_dir / "metrics.jsonl"), _records(run_dir / "eval.jsonl")
    evals = [Eval(int(e["env_steps"]), float(e["eval/return"]), float(e["eval/return_stderr"]))
             for e in eval_records]
    last = metrics[-1] if metrics else {}
    # An evaluation's wall_time is the run's elapsed time after it: the last one may end after the last
    # iteration's.
    ends = [last.get("time/elapsed_s", 0.0)] + [e["wall_time"] for e in eval_records]
    return Summary(iterations=int(last.get("iteration", 0)), env_steps=int(last.get("env_steps", 0)),
                   training_s=sum(m.get("time/iteration_s", 0.0) for m in metrics),
                   wall_clock_s=max(ends),
                   nonfinite=sum(m.get(NONFINITE, 0.0) for m in metrics),
                   skipped_steps=sum(m.get(SKIPPED_STEPS, 0.0) for m in metrics),
                   final=evals[-1] if evals else None,
                   best=max(evals, key=lambda e: e.mean, default=None))


def _duration(seconds: float) -> str:
    """`42 s`, `3 min 5 s`, `2 h 03 min`."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _eval(e: Eval | None) -> str:
    return "none yet" if e is None else f"{e.mean:.1f} +- {e.stderr:.1f} (stderr) at {e.env_steps:,} steps"


def format_summary(s: Summary, run_dir: Path) -> str:
    """A few lines: results, run health, then the commands."""
    speed = "-" if s.steps_per_s is None else f"{s.steps_per_s:,.0f}"
    iterations = f"{s.iterations} iteration{'' if s.iterations == 1 else 's'}"
    return "\n".join([
        f"done: {s.env_steps:,} env steps ({iterations}) in {_duration(s.wall_clock_s)} of training and "
        f"evaluation, {speed} env steps/s while training",
        f"  eval return: final {_eval(s.final)}; best {_eval(s.best)}",
        f"  non-finite: {s.nonfinite:,.0f} env steps reset (train/nonfinite), {s.skipped_steps:,.0f} update "
        "steps skipped (update/skipped_steps)",
        f"  run directory: {run_dir}",
        f"  plot:   python -m reppo_fast.plot {run_dir}",
        f"  video:  python -m reppo_fast.video {run_dir}",
        f"  resume: python -m reppo_fast.train --resume {run_dir} --total-steps N  (N: the new total, "
        f"above {s.env_steps:,})",
    ])


def summary_text(run_dir: Path) -> str:
    return format_summary(read(run_dir), run_dir)
