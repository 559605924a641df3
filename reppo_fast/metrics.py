"""Run metrics: JSONL (metrics.jsonl, eval.jsonl) and TensorBoard events in the run directory."""

from __future__ import annotations

import json
from pathlib import Path

from reppo_fast.algorithm import EvalResult


def _truncate_jsonl(path: Path, last_iteration: int) -> None:
    """Drop lines past `last_iteration`: work after the resumed checkpoint is redone, not duplicated."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["iteration"] <= last_iteration]
    path.write_text("".join(line + "\n" for line in kept))


class MetricsLogger:
    """Appends one JSON object per iteration (and per evaluation) and mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: Path, resume: tuple[int, int] | None = None, tensorboard: bool = True):
        """resume: (iteration, env_steps) of the checkpoint a resumed run continues from."""
        self.run_dir = Path(run_dir)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.eval_path = self.run_dir / "eval.jsonl"
        if resume is not None:
            _truncate_jsonl(self.metrics_path, resume[0])
            _truncate_jsonl(self.eval_path, resume[0])
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            # purge_step hides events a killed run wrote after the checkpoint we resume from
            # (TensorBoard steps are env steps here).
            purge = None if resume is None else resume[1] + 1
            self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)

    def _write(self, path: Path, record: dict) -> None:
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def log(self, iteration: int, env_steps: int, scalars: dict[str, float]) -> None:
        self._write(self.metrics_path, {"iteration": iteration, "env_steps": env_steps, **scalars})
        if self._tb is not None:
            for name, value in scalars.items():
                self._tb.add_scalar(name, value, env_steps)

    def log_eval(self, iteration: int, env_steps: int, result: EvalResult, wall_time: float) -> None:
        """The mean return and its standard error (eval/return, eval/return_stderr)."""
        self._write(self.eval_path, {"iteration": iteration, "env_steps": env_steps,
                                     "eval/return": result.mean, "eval/return_stderr": result.stderr,
                                     "wall_time": wall_time})
        if self._tb is not None:
            self._tb.add_scalar("eval/return", result.mean, env_steps)
            self._tb.add_scalar("eval/return_stderr", result.stderr, env_steps)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
