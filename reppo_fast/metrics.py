"""Run metrics: JSONL (metrics.jsonl, eval.jsonl) and TensorBoard events in the run directory, mirrored to
an optional tracker (reppo_fast.tracking: Weights & Biases)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from reppo_fast.algorithm import EvalResult


def _iteration(line: str) -> int | None:
    """The iteration a JSONL line records, or None for a line a killed process left cut off mid-write."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    iteration = record.get("iteration") if isinstance(record, dict) else None
    return iteration if isinstance(iteration, int) else None


def _replace_text(path: Path, text: str) -> None:
    """Write `path` atomically: a crash leaves the old file or the new one, never a half-written one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _truncate_jsonl(path: Path, last_iteration: int) -> None:
    """Drop lines past `last_iteration`: work after the resumed checkpoint is redone, not duplicated. Lines
    that do not parse (the partial last line of a killed run) go too."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        iteration = _iteration(line)
        if iteration is not None and iteration <= last_iteration:
            kept.append(line + "\n")
    _replace_text(path, "".join(kept))


def _event_file_suffix(tb_dir: Path) -> str:
    """A sequence number for this writer's event file. Event file names are `events.out.tfevents.<unix
    seconds>.<host>`: a resume in the same second as the run it continues would reopen (and empty) that run's
    file, and name order, which readers follow, would not tell the two apart."""
    from reppo_fast.tb_events import event_files

    return f".{len(event_files(tb_dir)):04d}"


class MetricsLogger:
    """Appends one JSON object per iteration (and per evaluation) and mirrors scalars to TensorBoard and to
    the tracker, if any."""

    def __init__(self, run_dir: Path, resume: tuple[int, int] | None = None, tensorboard: bool = True,
                 tracker=None):
        """resume: (iteration, env_steps) of the checkpoint a resumed run continues from. tracker: a
        reppo_fast.tracking.WandbTracker (or any object with its methods), closed with this logger."""
        self.run_dir = Path(run_dir)
        self._tracker = tracker
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.eval_path = self.run_dir / "eval.jsonl"
        tb_dir = self.run_dir / "tb"
        if resume is not None:
            from reppo_fast.tb_events import truncate_events

            _truncate_jsonl(self.metrics_path, resume[0])
            _truncate_jsonl(self.eval_path, resume[0])
            # Events a killed run wrote after the checkpoint are removed from the files themselves, so every
            # reader (tbparse, wandb's sync, TensorBoard) sees each step once; done even with TensorBoard off
            # now, as those steps are redone.
            truncate_events(tb_dir, resume[1])  # TensorBoard steps are env steps here
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            # purge_step is kept although the files are already truncated: a TensorBoard server left running
            # across the kill holds the stale steps in memory (it reads files incrementally and does not
            # notice one rewritten), and the SessionLog.START marker this writes makes it drop them. It
            # costs one event at the head of the new file, which scalar readers skip.
            purge = None if resume is None else resume[1] + 1
            suffix = _event_file_suffix(tb_dir)
            self._tb = SummaryWriter(str(tb_dir), purge_step=purge, filename_suffix=suffix)

    def _write(self, path: Path, record: dict) -> None:
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def log(self, iteration: int, env_steps: int, scalars: dict[str, float]) -> None:
        self._write(self.metrics_path, {"iteration": iteration, "env_steps": env_steps, **scalars})
        if self._tb is not None:
            for name, value in scalars.items():
                self._tb.add_scalar(name, value, env_steps)
        if self._tracker is not None:
            self._tracker.log(iteration, env_steps, scalars)

    def log_eval(self, iteration: int, env_steps: int, result: EvalResult, wall_time: float) -> None:
        """The mean return and its standard error (eval/return, eval/return_stderr)."""
        self._write(self.eval_path, {"iteration": iteration, "env_steps": env_steps,
                                     "eval/return": result.mean, "eval/return_stderr": result.stderr,
                                     "wall_time": wall_time})
        if self._tb is not None:
            self._tb.add_scalar("eval/return", result.mean, env_steps)
            self._tb.add_scalar("eval/return_stderr", result.stderr, env_steps)
        if self._tracker is not None:
            self._tracker.log_eval(iteration, env_steps, result.mean, result.stderr)

    def log_video(self, path: Path, env_steps: int) -> None:
        """An eval video already written (RUN_DIR/videos/): only the tracker has something to do with it."""
        if self._tracker is not None:
            self._tracker.log_video(path, env_steps)

    def close(self, error: BaseException | None = None) -> None:
        """error: what ends the run, if it did not finish (the tracker records it as stopped or failed)."""
        try:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
        finally:
            if self._tracker is not None:
                tracker, self._tracker = self._tracker, None
                tracker.close(error)
