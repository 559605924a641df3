"""Learning curves from run directories: loading, grouping, mean and spread over seeds, and the paper's
"reliable performance" metric (section 4.3). Pure numpy; reppo_fast.plot draws them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Paper returns (docs/algorithms.md section 8): REPPO at ~24M and ~50M env steps; Brax PPO at 50M where given.
PAPER_RETURNS = {
    "HumanoidRun": {"reppo": ((24e6, 518.0), (50e6, 748.0)), "ppo": ((50e6, 15.0),)},
    "HumanoidWalk": {"reppo": ((24e6, 972.0), (50e6, 991.0)), "ppo": ((50e6, 45.0),)},
    "CheetahRun": {"reppo": ((24e6, 926.0), (50e6, 933.0))},
    "WalkerRun": {"reppo": ((24e6, 878.0), (50e6, 894.0))},
    "PendulumSwingup": {"reppo": ((24e6, 474.0), (50e6, 627.0))},
    "CartpoleSwingupSparse": {"reppo": ((24e6, 734.0), (50e6, 711.0))},
}
# Config groups that belong to one algorithm (reppo_fast.config.GROUPS, without torch).
ALGORITHM_GROUPS = ("reppo", "ppo", "rpo")
# DM Control rewards lie in [0, 1] per step over 1000-step episodes: the paper's tau = 0.9 is 900.
DMC_MAX_RETURN = 1000.0


class RunDirError(ValueError):
    """A directory that holds no run (or no evaluation yet); the message names it."""


@dataclass
class Run:
    path: Path
    env: str
    algo: str
    framework: str
    seed: int
    env_steps: np.ndarray  # [E] env steps at each evaluation
    seconds: np.ndarray    # [E] training wall-clock seconds at each evaluation
    returns: np.ndarray    # [E] eval return
    config: dict = dataclasses.field(default_factory=dict)  # the run's config, by flat field name

    @property
    def label(self) -> str:
        return f"{self.algo} ({self.framework})"

    def labelled_by(self, fields: tuple[str, ...] = ()) -> str:
        """The label with the values of `fields` (flat config names) the run's config has, e.g.
        `rpo (jax), rpo_epochs=1`."""
        values = [f"{name}={self.config[name]}" for name in fields if name in self.config]
        return ", ".join([self.label, *values])


def load_run(path: Path) -> Run:
    path = Path(path)
    config_path, eval_path = path / "config.json", path / "eval.jsonl"
    if not config_path.exists():
        raise RunDirError(f"{path}: no config.json; pass run directories written by reppo_fast.train")
    records = [json.loads(line) for line in eval_path.read_text().splitlines() if line.strip()] \
        if eval_path.exists() else []
    if not records:
        raise RunDirError(f"{path}: no evaluation yet (eval.jsonl is missing or empty)")
    cfg = json.loads(config_path.read_text())
    # Flat names, as on the command line; an algorithm's group only for runs of that algorithm (every
    # config.json holds every group, so a REPPO run has RPO's defaults too, which it never read).
    flat = {k: v for k, v in cfg.items() if not isinstance(v, dict)}
    for name, group in cfg.items():
        if isinstance(group, dict) and (name not in ALGORITHM_GROUPS or name == cfg["algo"]):
            flat.update(group)
    return Run(path, cfg["env"], cfg["algo"], cfg["framework"], cfg["seed"],
               np.array([r["env_steps"] for r in records], np.float64),
               np.array([r["wall_time"] for r in records], np.float64),
               np.array([r["eval/return"] for r in records], np.float64), flat)


def group_runs(runs: list[Run], fields: tuple[str, ...] = ()) -> dict[str, list[Run]]:
    """Runs of one (algo, framework) on the same env, and the same values of `fields`, are seeds of one
    curve."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.labelled_by(fields), []).append(run)
    return groups


def at_steps(run: Run, steps: float) -> tuple[float, float] | None:
    """(eval return, training seconds) at `steps` env steps, linearly interpolated between the run's
    evaluations as the curves are; None beyond its last evaluation by more than 1% (a run of 2M steps ends
    at the last whole iteration, a little short of 2M)."""
    if steps > 1.01 * run.env_steps[-1]:
        return None
    return (float(np.interp(steps, run.env_steps, run.returns)),
            float(np.interp(steps, run.env_steps, run.seconds)))


def mean_and_spread(runs: list[Run], x: str, points: int = 200):
    """(grid, mean, min, max) of the runs' returns linearly interpolated on a common grid of `x`
    ("env_steps" or "seconds") over the range every run covers."""
    xs = [getattr(r, x) for r in runs]
    lo, hi = max(v[0] for v in xs), min(v[-1] for v in xs)
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    values = np.stack([np.interp(grid, v, r.returns) for v, r in zip(xs, runs)])
    return grid, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def reliable_since(run: Run, threshold: float) -> float | None:
    """Env steps from which the run is reliably performant: its eval return reached `threshold` there and
    never fell below it afterwards (None: its last evaluation is below)."""
    below = np.nonzero(run.returns < threshold)[0]
    first_good = 0 if below.size == 0 else below[-1] + 1
    return None if first_good == len(run.returns) else float(run.env_steps[first_good])


def reliable_fraction(runs: list[Run], threshold: float, grid: np.ndarray) -> np.ndarray:
    """Fraction of runs reliably performant at each env step of `grid` (the paper's figure 5)."""
    since = [reliable_since(r, threshold) for r in runs]
    return np.mean([[s is not None and g >= s for g in grid] for s in since], axis=0)


def default_threshold(env: str) -> float | None:
    """tau = 0.9 of the maximum return where it is known (DM Control: 900); None elsewhere."""
    from reppo_fast.envs.names import resolve_env

    return 0.9 * DMC_MAX_RETURN if resolve_env(env).suite == "dmc" else None
