"""Weights & Biases tracking (README, Experiment tracking), optional: `--wandb-project` logs the scalars of
metrics.jsonl and eval.jsonl with env steps as W&B's step (`iteration` as a scalar beside them), the config
(`Config.to_json`'s nested form) and the eval videos. Without a project (or with `--wandb-mode disabled`)
nothing here imports wandb.

A resumed run continues the same W&B run: its id is kept in RUN_DIR/wandb_id.txt. Only the main process
tracks (the runner gives the others a logger that writes nothing).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from reppo_fast.config import Config, ConfigError
from reppo_fast.preemption import Stopped

ID_FILE = "wandb_id.txt"
INSTALL = "pip install 'reppo_fast[wandb]'"


class TrackingUnavailable(ConfigError):
    """The tracking asked for cannot start: no wandb package, no credentials for online mode (both found
    before anything compiles), or wandb.init failed. A ConfigError, so the command line says it in one
    line."""


def enabled(cfg: Config) -> bool:
    return cfg.wandb_project is not None and cfg.wandb_mode != "disabled"


def _wandb():
    try:
        import wandb
    except ImportError:
        raise TrackingUnavailable(f"--wandb-project needs the wandb package: {INSTALL}") from None
    return wandb


def check(cfg: Config) -> None:
    """Refuse tracking that could not start, before the envs are built and compiled. Online mode needs
    credentials already there: without them wandb.init would prompt on a terminal, or fall back to offline
    on its own."""
    if not enabled(cfg):
        return
    wandb = _wandb()
    if cfg.wandb_mode == "online" and not wandb.login(prompt=False):
        raise TrackingUnavailable("--wandb-mode online needs W&B credentials: run `wandb login` or set "
                                  "WANDB_API_KEY, or pass --wandb-mode offline (then `wandb sync`)")


def _run_id(run_dir: Path, resume: bool) -> str:
    """The resumed run's W&B id, or a new one. A fresh start takes a new id even where the directory holds
    one (a run that died before its first checkpoint starts over): steps it logged would hide the new ones."""
    path = run_dir / ID_FILE
    if resume and path.exists() and path.read_text().strip():
        return path.read_text().strip()
    run_id = secrets.token_hex(6)  # W&B ids are unique per project: letters, digits, - and _
    path.write_text(run_id + "\n")
    return run_id


def start(cfg: Config, run_dir: Path, resume: bool) -> WandbTracker | None:
    """The tracker of the main process, or None when tracking is off. `run_dir` exists already."""
    if not enabled(cfg):
        return None
    wandb = _wandb()
    try:
        run = wandb.init(
            project=cfg.wandb_project, entity=cfg.wandb_entity, mode=cfg.wandb_mode, name=run_dir.name,
            id=_run_id(run_dir, resume), resume="allow",
            config=json.loads(cfg.to_json()),
            # A resume may raise total_steps (RESUMABLE_FIELDS): the resumed run's config then differs.
            allow_val_change=True,
            # The run directory keeps wandb's files too, unless the user points WANDB_DIR elsewhere.
            dir=None if os.environ.get("WANDB_DIR") else str(run_dir),
            # No capture of stdout/stderr: it would wrap the progress bar's terminal writes, and the run
            # directory already holds everything the console says.
            settings=wandb.Settings(console="off"),
        )
    except wandb.errors.Error as err:  # no network, a wrong entity or project: said in one line
        first_line = next(iter(str(err).splitlines()), type(err).__name__)
        raise TrackingUnavailable(f"wandb.init failed: {first_line}; --wandb-mode offline tracks without the "
                                  "network (`wandb sync` uploads it later)") from None
    return WandbTracker(run, wandb)


def exit_code(error: BaseException | None) -> int:
    """The status W&B records, as `python -m reppo_fast.train` exits: 0 done, 128 + signal stopped, 130
    interrupted, 1 failed."""
    if error is None:
        return 0
    if isinstance(error, Stopped):
        return 128 + error.signum
    return 130 if isinstance(error, KeyboardInterrupt) else 1


class WandbTracker:
    """Mirrors MetricsLogger's records to one W&B run."""

    def __init__(self, run, wandb):
        self._run = run
        self._wandb = wandb
        # A resumed run redoes the iterations a killed one logged after its last checkpoint; W&B holds those
        # steps already and drops (warning each time) any step below its newest, so they are skipped here.
        # On CPU the redone values are the same (resume is exact); metrics.jsonl holds the redone ones.
        self._first_step = run.step

    def _log(self, data: dict, env_steps: int) -> None:
        if env_steps >= self._first_step:
            self._run.log(data, step=env_steps)

    def log(self, iteration: int, env_steps: int, scalars: dict[str, float]) -> None:
        self._log({**scalars, "iteration": iteration}, env_steps)

    def log_eval(self, iteration: int, env_steps: int, mean: float, stderr: float) -> None:
        """The eval return and its standard error: W&B's chart of eval/return is the learning curve."""
        self._log({"eval/return": mean, "eval/return_stderr": stderr, "iteration": iteration}, env_steps)

    def log_video(self, path: str | Path, env_steps: int) -> None:
        """An MP4 of an evaluation, as `eval/video`. Call it before the next iteration is logged: W&B takes
        no step older than its newest."""
        video = self._wandb.Video(str(path), caption=f"{env_steps:,} env steps")
        self._log({"eval/video": video}, env_steps)

    def close(self, error: BaseException | None = None) -> None:
        """Finish the W&B run: done, or stopped by a signal (marked preempting: it will resume), or failed."""
        if isinstance(error, Stopped):
            self._run.mark_preempting()
        self._run.finish(exit_code=exit_code(error))
