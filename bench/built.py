"""One ready-to-time way of running an op, as the variant builders return it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Built:
    run: Callable[[], tuple]  # one call: the outputs, then the input gradients for forward+backward
    sync: Callable[[object], None]  # waits for the device work behind run()'s outputs
    names: tuple[str, ...]  # what run() returns, in order
    peak_bytes: Callable[[], int | None]  # peak memory added by one call (ask after the first run)
    to_numpy: Callable[[object], np.ndarray]
    interpreted: bool  # runs in an interpreter (Triton's, Pallas interpret mode): a smoke, not a kernel time

    def result(self) -> dict[str, np.ndarray]:
        return {n: self.to_numpy(v) for n, v in zip(self.names, self.run())}
