"""What a run does: its steps in order, each a command with a share of the budget.

On a GPU: facts; the GPU test subset; one whole HumanoidRun training iteration and one minibatch update per
end-to-end variant, each variant in its own process (a hang or a crash costs that variant only, and its peak
memory is its own); then the three ops at the paper's `dmc` shape in the mode the targets judge (forward +
backward for tanh_normal and hl_gauss_ce, forward for lambda_returns). The ops come last: a cut there loses
only the cases not yet run, while an end-to-end variant cut during its compilation yields nothing, so the
end-to-end runs are the ones that should get the time earlier steps leave over. A dry run (CPU) exercises
every step on tiny inputs: a fast test subset, ToyPointMass, lambda_returns at `small`.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

REPORT_SECONDS = 20.0  # kept back at the end of the budget for the report and the copies to $OUT
GPU_TESTS = ("tests/kernels", "tests/gpu", "tests/on_torch/test_compile_losses.py")
DRY_TESTS = ("tests/gpu", "tests/kernels/test_binding.py")
# Pairs first (each target compares a fast path with its reference); the slow eager torch baseline last.
E2E_VARIANTS = ("jax-xla", "jax-pallas", "torch-compile+graph+triton", "torch-eager")
# Seconds per phase at the default budget, scaled with --budget. e2e is shared evenly by its variants.
SHARES = {"gpu": {"facts": 20, "tests": 120, "e2e": 220, "ops": 100},
          "dry": {"facts": 20, "tests": 60, "e2e": 100, "ops": 40}}
DEFAULT_BUDGET = {"gpu": 480.0, "dry": 240.0}


@dataclass(frozen=True)
class Step:
    phase: str
    name: str
    argv: tuple[str, ...]
    share: float  # seconds of the budget kept for this step

    @property
    def slug(self) -> str:
        return slug(self.name)


def slug(name: str) -> str:
    """A step's file name stem (logs, streams): letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


@dataclass(frozen=True)
class Options:
    dry_run: bool
    budget: float
    python: str
    run_dir: Path
    phases: tuple[str, ...] = ("facts", "tests", "e2e", "ops")
    e2e_variants: tuple[str, ...] = E2E_VARIANTS
    e2e_env: str | None = None  # None: HumanoidRun, ToyPointMass in a dry run
    e2e_rounds: int | None = None  # None: 2, 1 in a dry run
    ops_k: str | None = None  # pytest -k for bench/test_ops.py; None: the default selection
    tests: tuple[str, ...] | None = None  # test paths; None: GPU_TESTS, DRY_TESTS in a dry run

    @property
    def mode(self) -> str:
        return "dry" if self.dry_run else "gpu"


def steps(opts: Options) -> list[Step]:
    builders = {"facts": _facts, "tests": _tests, "e2e": _e2e, "ops": _ops}
    unknown = sorted(set(opts.phases) - set(builders))
    if unknown:
        raise ValueError(f"unknown phases {unknown}; choose among {', '.join(builders)}")
    shares = SHARES[opts.mode]
    scale = (opts.budget - REPORT_SECONDS) / sum(shares[p] for p in opts.phases)
    out = []
    for phase in opts.phases:
        out += builders[phase](opts, shares[phase] * scale)
    return out


def _pytest(opts: Options) -> list[str]:
    return [opts.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench.gpu_check.stream",
            "--tb=short"]


def _facts(opts: Options, share: float) -> list[Step]:
    argv = (opts.python, "-m", "bench.gpu_check.facts", str(opts.run_dir / "facts.json"))
    return [Step("facts", "facts", argv, share)]


def _tests(opts: Options, share: float) -> list[Step]:
    paths = opts.tests or (DRY_TESTS if opts.dry_run else GPU_TESTS)
    # Correctness only, nothing timed: on the GPU machine's 16 cores, xdist overlaps the compilations.
    workers = ["-n", "4"] if not opts.dry_run and importlib.util.find_spec("xdist") else []
    return [Step("tests", "tests", tuple(_pytest(opts) + workers + list(paths)), share)]


def _ops(opts: Options, share: float) -> list[Step]:
    shape = "small" if opts.dry_run else "dmc"
    k = opts.ops_k or ("small and lambda_returns" if opts.dry_run else "dmc and (fwdbwd or lambda_returns)")
    timing = ["--benchmark-max-time", "0.05", "--benchmark-min-rounds", "3"] if opts.dry_run else \
        ["--benchmark-max-time", "0.2", "--benchmark-min-rounds", "5"]
    argv = _pytest(opts) + ["bench/test_ops.py", "-k", k, "--bench-shapes", shape,
                            "--benchmark-json", str(opts.run_dir / "ops.json"), *timing]
    return [Step("ops", "ops", tuple(argv), share)]


def _e2e(opts: Options, share: float) -> list[Step]:
    env = opts.e2e_env or ("ToyPointMass" if opts.dry_run else "HumanoidRun")
    rounds = opts.e2e_rounds or (1 if opts.dry_run else 2)
    out = []
    for variant in opts.e2e_variants:
        name = f"e2e {variant}"
        tests = [f"bench/test_e2e.py::test_e2e[{env}-{variant}-{what}]" for what in ("iteration", "update")]
        # --benchmark-max-time 0: exactly `rounds` timed rounds after test_e2e's warm-up calls.
        argv = _pytest(opts) + tests + ["--bench-envs", env, "--benchmark-max-time", "0",
                                        "--benchmark-min-rounds", str(rounds), "--benchmark-json",
                                        str(opts.run_dir / f"{slug(name)}.json")]
        out.append(Step("e2e", name, tuple(argv), share / len(opts.e2e_variants)))
    return out
