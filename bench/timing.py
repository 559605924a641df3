"""Timing one call honestly under pytest-benchmark.

- Warm-up excluded: the first calls (compilation, autotuning, allocator growth, CUDA-graph upload) run
  before the clock starts.
- The device waited for: the clock first waits for the device work behind the last call's outputs
  (torch.cuda.synchronize, jax.block_until_ready). pytest-benchmark reads the clock before and after a
  round of `iterations` back-to-back calls, so a round measures the device time of those calls (or their
  host time, when launching is the bottleneck), with one sync amortised over the round, as in training.
- The median over many rounds is the figure reported (pytest-benchmark computes it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ROUND_SECONDS = 2e-3  # a timed round lasts at least this long, so one sync is a small part of it
MAX_ITERATIONS = 1 << 14
MAX_ROUNDS = 2000


@dataclass
class Timed:
    """What to time: `run()` launches one call and returns its outputs without waiting; `sync(outputs)`
    waits until the device work behind them is done (outputs may be None: nothing to wait for)."""

    run: Callable[[], Any]
    sync: Callable[[Any], None]


def measure(benchmark, timed: Timed, config, warmup: int = 3) -> float | None:
    """Time `timed` with the pytest-benchmark fixture; returns the median seconds per call (None when
    benchmarking is disabled: then `run` is called once, as a smoke test).

    Rounds: enough to fill --benchmark-max-time, at least --benchmark-min-rounds.
    """
    if not benchmark.enabled:
        benchmark.pedantic(timed.run)
        return None
    last = [None]

    def call():
        last[0] = timed.run()

    def synced_perf_counter():
        timed.sync(last[0])
        return time.perf_counter()

    for _ in range(warmup):
        call()
    iterations, seconds = _calibrate(call, synced_perf_counter)
    max_time = float(config.getoption("benchmark_max_time"))
    min_rounds = int(config.getoption("benchmark_min_rounds"))
    rounds = min(MAX_ROUNDS, max(min_rounds, math.ceil(max_time / seconds)))
    _use_clock(benchmark, synced_perf_counter)
    benchmark.pedantic(call, rounds=rounds, iterations=iterations, warmup_rounds=1)
    return benchmark.stats.stats.median


def _calibrate(call, clock) -> tuple[int, float]:
    """(calls per round, seconds per round): calls are multiplied until a round lasts ROUND_SECONDS."""
    iterations = 1
    while True:
        start = clock()
        for _ in range(iterations):
            call()
        seconds = clock() - start
        if seconds >= ROUND_SECONDS or iterations >= MAX_ITERATIONS:
            return iterations, seconds
        iterations = min(MAX_ITERATIONS, iterations * max(2, math.ceil(ROUND_SECONDS / max(seconds, 1e-7))))


def _use_clock(benchmark, clock) -> None:
    """pytest-benchmark takes its clock from --benchmark-timer, one importable function for the whole
    run; the device to wait for differs per benchmark, so the fixture's clock is set here (pinned
    pytest-benchmark 5.x: `_timer` is the clock its runner reads)."""
    if not hasattr(benchmark, "_timer"):
        raise RuntimeError("this pytest-benchmark has no BenchmarkFixture._timer; bench/timing.py needs 5.x")
    benchmark._timer = clock
