"""Run one command in a time box. Its output goes straight to a log file (nothing is lost when it is cut);
when the box ends the whole process group gets SIGINT, so pytest still prints its summary and writes its
JSON, and SIGKILL after a grace period."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

MIN_BOX = 5.0  # a step with less time than this is not started: it could not even import torch
GRACE = 15.0


@dataclass
class Outcome:
    status: str  # "ok", "failed" (non-zero exit), "cut" (stopped before it ended), "not run" (no time left)
    rc: int | None
    seconds: float
    box: float
    note: str = ""
    interrupted: bool = False  # the check itself was stopped (SIGINT, SIGTERM) while this step ran

    def to_dict(self) -> dict:
        return asdict(self)


def run(argv: list[str], box: float, log: Path, *, env: dict[str, str] | None = None,
        cwd: str | Path | None = None, grace: float = GRACE, min_box: float = MIN_BOX) -> Outcome:
    if box < min_box:
        return Outcome("not run", None, 0.0, box, f"only {box:.0f} s of the budget left")
    start = time.monotonic()
    with open(log, "ab") as out:
        # Its own process group (new session): stopping the group stops its children too.
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=cwd, start_new_session=True)
        try:
            rc = proc.wait(timeout=box)
        except subprocess.TimeoutExpired:
            _stop(proc, grace)
            return Outcome("cut", proc.returncode, time.monotonic() - start, box,
                           f"ran past its {box:.0f} s box and was stopped")
        except KeyboardInterrupt:
            _stop(proc, min(grace, 5.0))  # an outer timeout is close: keep the stop short
            return Outcome("cut", proc.returncode, time.monotonic() - start, box,
                           "stopped with the check (interrupted from outside)", interrupted=True)
    seconds = time.monotonic() - start
    _signal_group(proc, signal.SIGKILL)  # a child it left running would hold the GPU into the next step
    return Outcome("ok" if rc == 0 else "failed", rc, seconds, box, "" if rc == 0 else f"exit status {rc}")


def _stop(proc: subprocess.Popen, grace: float) -> None:
    """SIGINT to the group, then SIGKILL to whatever of it is left (compile workers, xdist workers)."""
    _signal_group(proc, signal.SIGINT)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
