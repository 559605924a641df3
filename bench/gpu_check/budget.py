"""One wall-clock budget shared by the steps of a run: each step's box is what is left once the shares of
the steps after it are kept back, so time an early step leaves unused flows to the later ones, and a step
that overruns can never eat a later step's share."""

from __future__ import annotations

import time
from collections.abc import Callable


class Budget:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds, self.clock, self.start = seconds, clock, clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def box(self, kept_back: float) -> float:
        """Seconds for the next step when `kept_back` seconds must remain for everything after it."""
        return max(0.0, self.left() - kept_back)
