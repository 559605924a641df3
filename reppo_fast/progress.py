"""A tqdm progress bar over env steps: steps/s, last eval return and ETA."""

from __future__ import annotations

from tqdm.auto import tqdm


class Progress:
    def __init__(self, cfg, start_iteration: int, last_eval: float | None):
        self.spi = cfg.steps_per_iteration
        self.bar = tqdm(total=cfg.num_iterations * self.spi, initial=start_iteration * self.spi,
                        unit="step", unit_scale=True, dynamic_ncols=True, disable=not cfg.progress,
                        desc=cfg.env, smoothing=0.1)
        self._postfix(None, last_eval)

    def _postfix(self, steps_per_s: float | None, last_eval: float | None) -> None:
        self.bar.set_postfix_str(
            f"{'-' if steps_per_s is None else f'{steps_per_s:,.0f}'} steps/s | "
            f"eval {'-' if last_eval is None else f'{last_eval:.1f}'}", refresh=False)

    def update(self, iteration: int, scalars: dict, last_eval: float | None) -> None:
        self._postfix(scalars["time/env_steps_per_s"], last_eval)
        self.bar.update(iteration * self.spi - self.bar.n)

    def close(self) -> None:
        self.bar.close()
