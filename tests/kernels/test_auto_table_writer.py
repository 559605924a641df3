"""The benchmark table's writer (bench/kernel_table.py, `python -m bench.report --write-table`) round trip:
a synthetic GPU run in pytest-benchmark's JSON layout -> the table file -> the reader's choice.

Imports `bench` from the repository root, as `python -m pytest` (CI's command) puts it on sys.path.
"""

import json

from bench import report
from reppo_fast.kernels import fastest

GPU = "NVIDIA Test GPU 80GB"
DIMS = {"small": {"B": 512, "A": 1, "K": 151, "S": 16, "T": 16, "N": 256},
        "dmc": {"B": 2048, "A": 21, "K": 151, "S": 16, "T": 128, "N": 1024}}
# Seconds per call in the training modes. tanh_normal: triton+graph beats the best compiled reference
# (torch-compile+graph) at dmc, and loses at small; hl_gauss_ce: triton never beats it; lambda_returns: triton
# wins at both. JAX: pallas wins hl_gauss_ce at dmc only.
TRAINING = {
    ("tanh_normal", "small"): {"torch-compile": 3e-5, "torch-compile+graph": 2e-5, "triton": 5e-5,
                               "triton+graph": 4e-5, "torch-eager": 1e-3, "jax-xla": 1e-5, "pallas": 2e-5},
    ("tanh_normal", "dmc"): {"torch-compile": 4e-4, "torch-compile+graph": 3e-4, "triton": 2e-4,
                             "triton+graph": 1e-4, "torch-eager": 1e-2, "jax-xla": 1e-4, "pallas": 2e-4},
    ("hl_gauss_ce", "small"): {"torch-compile": 2e-5, "torch-compile+graph": 3e-5, "triton": 2e-5,
                               "jax-xla": 1e-5, "pallas": 1e-5},
    ("hl_gauss_ce", "dmc"): {"torch-compile": 2e-4, "torch-compile+graph": 3e-4, "triton": 2.5e-4,
                             "jax-xla": 3e-4, "pallas": 1e-4},
    ("lambda_returns", "small"): {"torch-compile": 1e-4, "triton": 1e-5, "jax-xla": 1e-4, "pallas": 2e-4},
    ("lambda_returns", "dmc"): {"torch-compile": 2e-3, "triton": 1e-4, "jax-xla": 1e-3, "pallas": 2e-3},
}


def _bench(op, mode, shape, variant, seconds, device_kind, **extra):
    info = {"kind": "op", "op": op, "mode": mode, "shape": shape, "variant": variant,
            "framework": "jax" if variant in ("jax-xla", "pallas") else "torch", "dims": DIMS[shape],
            "interpreted": False, "device": GPU if device_kind == "cuda" else "CPU: test",
            "device_kind": device_kind, "versions": {"torch": "2.13.0"}, "commit": "abc123", "load_avg": 0.1,
            **extra}
    return {"stats": {"median": seconds}, "extra_info": info}


def _results_json(tmp_path, device_kind="cuda"):
    """As `pytest bench --benchmark-json` writes it (bench/results.py reads it), with decoys that must not
    count: forward-only times of the differentiated ops (the kernel far faster there), an interpreted run."""
    benches = [_bench(op, fastest.TRAINING_MODE[op], shape, variant, seconds, device_kind)
               for (op, shape), variants in TRAINING.items() for variant, seconds in variants.items()]
    benches += [_bench(op, "fwd", shape, variant, seconds, device_kind)
                for op in ("tanh_normal", "hl_gauss_ce") for shape in DIMS
                for variant, seconds in (("torch-compile", 1e-3), ("triton", 1e-9))]
    benches.append(_bench("hl_gauss_ce", "fwdbwd", "small", "triton+graph", 1e-9, device_kind,
                          interpreted=True))
    path = tmp_path / f"{device_kind}.json"
    path.write_text(json.dumps({"datetime": "2026-12-01T10:00:00", "benchmarks": benches}))
    return path


def _write(tmp_path, table, device_kind="cuda"):
    return report.main([str(_results_json(tmp_path, device_kind)), "--write-table", "--table", str(table)])


def test_round_trip_from_a_gpu_run_to_the_choice(tmp_path, capsys):
    table = tmp_path / "fastest.json"
    assert _write(tmp_path, table) == 0
    assert "# reppo_fast benchmarks: NVIDIA Test GPU 80GB" in capsys.readouterr().out
    reports = fastest.load_table(table)
    entry = reports[GPU]
    assert entry["commit"] == "abc123" and entry["datetime"] == "2026-12-01T10:00:00"
    dmc = entry["ops"]["torch"]["tanh_normal"][1]
    assert dmc == {"shape": "dmc", "dims": {"B": 2048, "A": 21, "S": 16}, "mode": "fwdbwd",
                   "seconds": {"reference": 3e-4, "triton": 1e-4},
                   "variants": {"reference": "torch-compile+graph", "triton": "triton+graph"}}
    expected = {  # (framework, op, shape) -> backend, by TRAINING's comments
        ("torch", "tanh_normal", "small"): "reference", ("torch", "tanh_normal", "dmc"): "triton",
        ("torch", "hl_gauss_ce", "small"): "reference", ("torch", "hl_gauss_ce", "dmc"): "reference",
        ("torch", "lambda_returns", "small"): "triton", ("torch", "lambda_returns", "dmc"): "triton",
        ("jax", "tanh_normal", "small"): "reference", ("jax", "tanh_normal", "dmc"): "reference",
        ("jax", "hl_gauss_ce", "small"): "reference", ("jax", "hl_gauss_ce", "dmc"): "pallas",
        ("jax", "lambda_returns", "small"): "reference", ("jax", "lambda_returns", "dmc"): "reference",
    }
    for (framework, op, shape), backend in expected.items():
        choice = fastest.choose(reports, framework, op, GPU, DIMS[shape])
        assert choice.backend == backend, (framework, op, shape, choice.reason)
    why = fastest.choose(reports, "torch", "tanh_normal", GPU, DIMS["dmc"]).reason
    assert why == ("triton 3.00x faster than the compiled reference at dmc (B=2048 A=21 S=16), fwdbwd; "
                   "report abc123, 2026-12-01T10:00:00")


def test_a_new_run_replaces_only_its_gpus_entry(tmp_path):
    table = tmp_path / "fastest.json"
    other = {"commit": "old", "datetime": "2026-01-01", "versions": {}, "ops": {}}
    table.write_text(json.dumps({"schema": fastest.SCHEMA, "reports": {"NVIDIA Other": other,
                                                                       GPU: {**other, "commit": "stale"}}}))
    assert _write(tmp_path, table) == 0
    reports = fastest.load_table(table)
    assert reports["NVIDIA Other"] == other and reports[GPU]["commit"] == "abc123"


def test_a_cpu_run_is_refused_and_nothing_written(tmp_path, capsys):
    table = tmp_path / "fastest.json"
    table.write_text(json.dumps({"schema": fastest.SCHEMA, "reports": {}}))
    before = table.read_text()
    assert _write(tmp_path, table, device_kind="cpu") == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "refusing to write the kernel table from a CPU run (CPU: test)" in err
    assert table.read_text() == before
