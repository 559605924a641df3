"""The issue's performance targets (GPU, paper shapes), judged from a results file. A target is a benchmark
result, not a timed test: a miss is reported with its ratio, how far off it is and the likely reason the
numbers point to, never as a failure."""

from __future__ import annotations

from typing import NamedTuple

from bench.results import Result, Results

FUSED = ("triton", "triton+graph")
COMPILED = ("torch-compile", "torch-compile+graph")
MAIN_MODE = {"tanh_normal": "fwdbwd", "hl_gauss_ce": "fwdbwd", "lambda_returns": "fwd"}
NOISE = 0.02  # "no slower": within 2 % of the reference, the run-to-run spread of an iteration's median
LAUNCH_BOUND_S = 20e-6  # calls this short are dominated by launch and sync latency, not by bytes


class Verdict(NamedTuple):
    target: str
    measured: str
    met: bool | None  # None: not measured
    note: str


def _missing(target: str) -> Verdict:
    return Verdict(target, "not measured", None, "a variant it needs was not run")


def _why_slow(fast: Result) -> str:
    """What the fused row says about a low ratio: launch-bound, memory-bound, or neither."""
    us = fast.median * 1e6
    if fast.median < LAUNCH_BOUND_S:
        return (f"the fused call takes {us:.1f} us, close to the cost of a kernel launch: at this size both "
                "paths are bound by launches and synchronisation more than by work")
    if fast.copy_fraction is not None and fast.copy_fraction >= 0.5:
        return (f"the fused kernel already moves its bytes at {fast.copy_fraction:.0%} of copy bandwidth: "
                "it is memory-bound, so the ratio is capped by the baseline's extra traffic")
    share = "an unknown share" if fast.copy_fraction is None else f"{fast.copy_fraction:.0%}"
    return (f"the fused kernel takes {us:.0f} us at {share} of copy bandwidth, neither launch- nor "
            "bandwidth-bound: profile it (occupancy, the S-sample loop, fp64 sums)")


def _ratio(target: str, baseline: Result | None, fast: Result | None, need: float) -> Verdict:
    if baseline is None or fast is None:
        return _missing(target)
    ratio = baseline.median / fast.median
    note = "" if ratio >= need else f"{1 - ratio / need:.0%} short of {need:g}x; {_why_slow(fast)}"
    return Verdict(target, f"{ratio:.2f}x", ratio >= need, note)


def _op_speedups(r: Results) -> list[Verdict]:
    out = []
    for op, label, eager_need, compiled_need in (("tanh_normal", "fused tanh_normal + KL", 20, 1.5),
                                                 ("hl_gauss_ce", "HL-Gauss CE", 10, 1.5)):
        fast = r.op(op, "fwdbwd", "dmc", *FUSED)
        out.append(_ratio(f"{label} fwd+bwd >= {eager_need}x eager (dmc)",
                          r.op(op, "fwdbwd", "dmc", "torch-eager"), fast, eager_need))
        out.append(_ratio(f"{label} fwd+bwd >= {compiled_need}x compiled reference (dmc)",
                          r.op(op, "fwdbwd", "dmc", *COMPILED), fast, compiled_need))
    out.append(_ratio("lambda-returns >= 100x the eager Python loop (dmc, Triton)",
                      r.op("lambda_returns", "fwd", "dmc", "torch-eager"),
                      r.op("lambda_returns", "fwd", "dmc", *FUSED), 100))
    out.append(_ratio("lambda-returns >= 2x lax.scan (dmc, Pallas)",
                      r.op("lambda_returns", "fwd", "dmc", "jax-xla"),
                      r.op("lambda_returns", "fwd", "dmc", "pallas"), 2))
    return out


def _bandwidth(r: Results) -> list[Verdict]:
    out = []
    for op, mode in MAIN_MODE.items():
        for variant in ("triton", "pallas"):
            target = f"{variant} {op} {mode} >= 70% of copy bandwidth (large)"
            res = r.op(op, mode, "large", variant)
            if res is None or res.copy_fraction is None:
                out.append(_missing(target))
                continue
            note = "" if res.copy_fraction >= 0.7 else (
                f"{0.7 - res.copy_fraction:.0%} of copy bandwidth short ({res.gbps:.0f} GB/s over "
                f"{res.median * 1e3:.3g} ms): bound by latency or arithmetic, not by bytes")
            out.append(Verdict(target, f"{res.copy_fraction:.0%}", res.copy_fraction >= 0.7, note))
    return out


def _torch_update(r: Results, env: str) -> Verdict:
    eager = r.e2e.get((env, "torch-eager", "update"))
    verdict = _ratio(f"torch update step >= 3x eager reference ({env})", eager,
                     r.e2e.get((env, "torch-compile+graph+triton", "update")), 3)
    compiled = r.e2e.get((env, "torch-compile+graph", "update"))
    if verdict.met is False and compiled is not None:
        short, reached = verdict.note.split(";")[0], eager.median / compiled.median
        verdict = verdict._replace(note=(
            f"{short}; compile + CUDA graphs with the reference ops reach {reached:.2f}x: the rest of the "
            "step is the networks and the optimiser, which the fused ops do not touch"))
    return verdict


def _jax_iteration(r: Results, env: str) -> Verdict:
    target = f"JAX + Pallas iteration no slower than the JAX reference ({env})"
    ref, pallas = r.e2e.get((env, "jax-xla", "iteration")), r.e2e.get((env, "jax-pallas", "iteration"))
    if ref is None or pallas is None:
        return _missing(target)
    ratio = ref.median / pallas.median
    met = ratio >= 1 - NOISE
    losing = [op for op, mode in MAIN_MODE.items()
              if (p := r.op(op, mode, "dmc", "pallas")) and (x := r.op(op, mode, "dmc", "jax-xla"))
              and p.median > x.median]
    note = "" if met else (f"Pallas is {1 / ratio - 1:.0%} slower per iteration; ops where it loses to XLA "
                           f"at dmc: {', '.join(losing) or 'none'}")
    return Verdict(target, f"{ratio:.2f}x (within {NOISE:.0%} counts as met)", met, note)


def _memory(r: Results) -> list[Verdict]:
    target = "fused ops never use more peak memory than their references"
    compared, worse = 0, []
    for (op, mode, shape, variant), res in sorted(r.ops.items()):
        baseline = {"triton": "torch-eager", "pallas": "jax-xla"}.get(variant)
        ref = r.ops.get((op, mode, shape, baseline)) if baseline else None
        if ref is None or res.peak is None or ref.peak is None:
            continue
        compared += 1
        if res.peak > ref.peak:
            worse.append(f"{variant} {op} {mode} {shape}: {res.peak / 2**20:.1f} MiB > "
                         f"{ref.peak / 2**20:.1f} MiB")
    if not compared:
        return [_missing(target)]
    shown = "; ".join(worse[:5]) + (f"; and {len(worse) - 5} more" if len(worse) > 5 else "")
    return [Verdict(target, f"{compared - len(worse)} of {compared} comparisons", not worse, shown)]


def evaluate(r: Results) -> list[Verdict]:
    envs = sorted({key[0] for key in r.e2e})
    e2e = [v for env in envs for v in (_torch_update(r, env), _jax_iteration(r, env))]
    return _op_speedups(r) + _bandwidth(r) + e2e + _memory(r)
