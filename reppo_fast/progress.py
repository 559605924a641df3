"""A tqdm progress bar over env steps: steps/s, last eval return and ETA; and, while a long call gives it no
chance to redraw (the first iteration compiles for a minute or more on a CPU), what that call is doing with
its elapsed seconds."""

from __future__ import annotations

import contextlib
import threading
import time

from tqdm.auto import tqdm


class Progress:
    def __init__(self, cfg, start_iteration: int, last_eval: float | None):
        self.spi = cfg.steps_per_iteration
        self.desc = cfg.env
        # Drawn at once (tqdm draws on construction): the bar is there before the first iteration ends.
        self.bar = tqdm(total=cfg.num_iterations * self.spi, initial=start_iteration * self.spi,
                        unit="step", unit_scale=True, dynamic_ncols=True, disable=not cfg.progress,
                        desc=cfg.env, smoothing=0.1)
        self._ticker: _Ticker | None = None
        self._postfix(None, last_eval)

    def _postfix(self, steps_per_s: float | None, last_eval: float | None) -> None:
        self.bar.set_postfix_str(
            f"{'-' if steps_per_s is None else f'{steps_per_s:,.0f}'} steps/s | "
            f"eval {'-' if last_eval is None else f'{last_eval:.1f}'}", refresh=False)

    def update(self, iteration: int, scalars: dict, last_eval: float | None) -> None:
        self._postfix(scalars["time/env_steps_per_s"], last_eval)
        self.bar.update(iteration * self.spi - self.bar.n)

    @contextlib.contextmanager
    def waiting(self, what: str):
        """While the block runs, the bar's description says `what` and the seconds it has taken so far,
        redrawn every second by a background thread; nothing when the bar is off (--no-progress, and every
        process but the main one)."""
        if self.bar.disable:
            yield
            return
        self._ticker = _Ticker(self.bar, f"{self.desc}: {what}")
        try:
            yield
        finally:
            self._stop_ticker()
            self.bar.set_description_str(self.desc)

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    def close(self) -> None:
        self._stop_ticker()  # a run ended by an exception inside `waiting` stops it here too
        self.bar.close()


class _Ticker(threading.Thread):
    """Sets the bar's description to `text` and the elapsed seconds, every second until stopped. A daemon:
    it never holds the process open."""

    def __init__(self, bar, text: str):
        super().__init__(name="progress-ticker", daemon=True)
        self.bar, self.text, self.t0 = bar, text, time.perf_counter()
        self._stopped = threading.Event()
        self._show()
        self.start()

    def _show(self) -> None:
        self.bar.set_description_str(f"{self.text} {time.perf_counter() - self.t0:.0f} s")

    def run(self) -> None:
        while not self._stopped.wait(1.0):
            self._show()

    def stop(self) -> None:
        self._stopped.set()
        self.join()
