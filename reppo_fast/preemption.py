"""Stopping on a cluster's signal (README, Faults and resuming): SIGTERM, which SLURM and Kubernetes send to
preempt or cancel a job, and SIGUSR1, which SLURM sends ahead of the time limit with `--signal=USR1@<s>`.

The first signal asks the run to stop at the end of the iteration in progress; the runner then writes a
checkpoint, prints the resume command and exits with status 128 + the signal's number. Stopping between
iterations rather than inside one keeps every process of a data-parallel run at the same iteration, so the
checkpoint is one consistent state. A second signal stops at once, as Ctrl-C does.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """A context manager: while inside, SIGTERM and SIGUSR1 set `received` (the signal's number) instead of
    killing the process; the previous handlers come back on exit. Outside the main thread (where Python
    cannot take signals) it does nothing."""

    def __init__(self, announce: bool = True):
        self.received: int | None = None
        self._announce = announce
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # the second one: stop now, through the Ctrl-C path
            raise KeyboardInterrupt
        self.received = signum
        if self._announce:
            name = signal.Signals(signum).name
            print(f"\n{name} received: stopping after this iteration with a checkpoint (send it again to "
                  "stop at once)", file=sys.stderr, flush=True)


class Stopped(Exception):
    """The run stopped on a signal after writing a checkpoint; the exit status is 128 + signum."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
