"""One per-op benchmark: check against the float64 gold, measure peak memory, time, record."""

from __future__ import annotations

import pytest

from bench import machine, selection, variants_jax, variants_torch
from bench.op_data import assert_matches, gold
from bench.shapes import SHAPES
from bench.timing import Timed, measure
from bench.traffic import min_bytes

FRAMEWORK = {**{v: "torch" for v in variants_torch.VARIANTS}, **{v: "jax" for v in variants_jax.VARIANTS}}


def _peak_method(variant: str) -> str | None:
    if FRAMEWORK[variant] == "jax":
        return "xla memory analysis (temporaries + outputs)"
    if not machine.has_cuda():
        return None
    return "cuda graph capture" if variant.endswith("+graph") else "torch allocator peak"


def run_op_case(benchmark, config, copy_bw, op: str, mode: str, shape_name: str, variant: str) -> None:
    reason = selection.op_skip_reason(config, variant, shape_name)
    if reason:
        pytest.skip(reason)
    shape = SHAPES[shape_name]
    expected = gold(op, mode, shape, variants_torch.device())
    builder = variants_torch if FRAMEWORK[variant] == "torch" else variants_jax
    built = builder.build(op, mode, shape, variant)
    # The first call compiles; it is also the check: nothing is timed unless it matches the gold.
    assert_matches(built.result(), expected, f"{variant} {op} {mode} at {shape_name}")
    peak = built.peak_bytes()
    benchmark.group = f"{op} {mode} {shape_name}"
    seconds = measure(benchmark, Timed(built.run, built.sync), config)
    nbytes = min_bytes(op, mode, shape)
    info = {"kind": "op", "framework": FRAMEWORK[variant], "variant": variant, "op": op, "mode": mode,
            "shape": shape_name, "dims": shape.dims(), "interpreted": built.interpreted, "bytes": nbytes,
            "peak_bytes": peak, "peak_method": _peak_method(variant), **machine.record()}
    if seconds is not None and copy_bw is not None:
        gbps = nbytes / seconds / 1e9
        info.update(gbps=gbps, copy_gbps=copy_bw["gbps"], copy_method=copy_bw["method"],
                    copy_fraction=gbps / copy_bw["gbps"])
    benchmark.extra_info.update(info)
