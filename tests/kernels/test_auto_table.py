"""`--kernels auto`: the reader of the GPU benchmark table (reppo_fast/kernels/fastest.py) and the binding.

The oracle is the rule itself, stated on hand-built tables whose answer is plain: the fastest kernel at the
nearest measured shape (within 4x in elements), only if strictly faster than the compiled reference; the
reference without a GPU, a report for this GPU, or a row near enough.
"""

import json

import pytest

from reppo_fast import kernels
from reppo_fast.config import Config
from reppo_fast.kernels import binding, fastest

GPU = "NVIDIA Test GPU 80GB"
SMALL = {"B": 512, "A": 1, "S": 16, "K": 151, "T": 16, "N": 256}
DMC = {"B": 2048, "A": 21, "S": 16, "K": 151, "T": 128, "N": 1024}


def _row(op, shape, dims, **seconds):
    return {"shape": shape, "dims": {d: dims[d] for d in fastest.OP_DIMS[op]},
            "mode": fastest.TRAINING_MODE[op], "seconds": seconds, "variants": {b: b for b in seconds}}


def _reports(framework, op, *rows):
    ops = {framework: {op: list(rows)}}
    return {GPU: {"commit": "abc123", "datetime": "2026-12-01", "versions": {}, "ops": ops}}


def _table(tmp_path, reports):
    path = tmp_path / "fastest.json"
    path.write_text(json.dumps({"schema": fastest.SCHEMA, "reports": reports}))
    return path


def test_the_fastest_kernel_at_the_exact_shape():
    reports = _reports("torch", "tanh_normal",
                       _row("tanh_normal", "small", SMALL, reference=1e-4, triton=2e-4),
                       _row("tanh_normal", "dmc", DMC, reference=3e-4, triton=1e-4, triton2=0.5e-4))
    choice = fastest.choose(reports, "torch", "tanh_normal", GPU, DMC)
    assert choice.backend == "triton2"
    assert "6.00x faster than the compiled reference at dmc" in choice.reason and "abc123" in choice.reason
    # At small the kernel is slower: the reference, saying why.
    choice = fastest.choose(reports, "torch", "tanh_normal", GPU, SMALL)
    assert choice.backend == "reference" and "not faster" in choice.reason and "(0.50x)" in choice.reason


@pytest.mark.parametrize("kernel_seconds", [3e-4, 3e-4 * (1 + 1e-9), 1.0])
def test_the_reference_unless_the_kernel_is_strictly_faster(kernel_seconds):
    def pick(pallas):
        row = _row("hl_gauss_ce", "dmc", DMC, reference=3e-4, pallas=pallas)
        reports = _reports("jax", "hl_gauss_ce", row)
        return fastest.choose(reports, "jax", "hl_gauss_ce", GPU, DMC).backend

    assert pick(kernel_seconds) == "reference"
    assert pick(2.9999e-4) == "pallas"


def test_the_nearest_measured_shape_within_a_factor_of_four():
    # lambda_returns on T x N: small = 16 x 256 = 4096 elements (the kernel wins), mid = 16 x 2048 = 32768
    # (the kernel loses).
    mid = {"T": 16, "N": 2048}
    reports = _reports("torch", "lambda_returns",
                       _row("lambda_returns", "small", SMALL, reference=2e-4, triton=1e-4),
                       _row("lambda_returns", "mid", mid, reference=1e-4, triton=2e-4))

    def pick(T, N):
        return fastest.choose(reports, "torch", "lambda_returns", GPU, {"T": T, "N": N})

    # The geometric midpoint of 4096 and 32768 is 11585: either side goes to the nearer row.
    assert pick(16, 720).backend == "triton" and "at small" in pick(16, 720).reason
    assert pick(16, 730).backend == "reference" and "at mid" in pick(16, 730).reason
    # Only the element count matters: 8 x 1460 is 11680 too.
    assert "at mid" in pick(8, 1460).reason
    # Up to 4x beyond the largest row still counts; past it there is no data.
    assert "at mid" in pick(128, 1024).reason
    beyond = pick(128, 1025)
    assert beyond.backend == "reference" and "no torch lambda_returns row within 4x" in beyond.reason
    assert "nearest mid is 4.0x off" in beyond.reason
    assert "at small" in pick(1, 1024).reason
    below = pick(1, 1023)
    assert below.backend == "reference" and "within 4x" in below.reason


def test_other_devices_frameworks_and_ops_get_the_reference():
    reports = _reports("torch", "tanh_normal", _row("tanh_normal", "dmc", DMC, reference=3e-4, triton=1e-4))
    other = fastest.choose(reports, "torch", "tanh_normal", "NVIDIA H200", DMC)
    assert other == ("reference", "no GPU benchmark report for NVIDIA H200")
    assert fastest.choose(reports, "jax", "tanh_normal", GPU, DMC).backend == "reference"
    assert fastest.choose(reports, "torch", "hl_gauss_ce", GPU, DMC).backend == "reference"
    no_gpu = fastest.choose(reports, "torch", "tanh_normal", None, DMC)
    assert no_gpu.backend == "reference" and "no GPU for torch" in no_gpu.reason
    no_shapes = fastest.choose(reports, "torch", "tanh_normal", GPU, None)
    assert no_shapes.backend == "reference" and "no configured shapes" in no_shapes.reason
    only_reference = _reports("torch", "tanh_normal", _row("tanh_normal", "dmc", DMC, reference=3e-4))
    choice = fastest.choose(only_reference, "torch", "tanh_normal", GPU, DMC)
    assert choice.backend == "reference" and "no kernel measured at dmc" in choice.reason


def test_an_empty_table_gives_the_reference_for_every_op(tmp_path, monkeypatch):
    monkeypatch.setattr(fastest, "device_name", lambda framework: GPU)
    for framework in ("torch", "jax"):
        bound = kernels.bind(framework, "auto", shapes=DMC, table=_table(tmp_path, {}))
        assert bound.bound == {op: "reference" for op in kernels.OPS}
        assert bound.reasons == {op: f"no GPU benchmark report for {GPU}" for op in kernels.OPS}


def test_the_committed_table_reads_and_every_row_can_be_judged():
    reports = fastest.load_table()
    assert GPU not in reports
    for device, report in reports.items():
        assert report["commit"] and report["datetime"], device
        for framework, ops in report["ops"].items():
            for op, rows in ops.items():
                for row in rows:
                    assert row["mode"] == fastest.TRAINING_MODE[op] and row["seconds"]["reference"] > 0
                    assert set(row["dims"]) == set(fastest.OP_DIMS[op]), (device, framework, op)
    for op in kernels.OPS:
        assert fastest.choose(reports, "torch", op, GPU, DMC).backend == "reference"


def test_bind_auto_follows_the_table_per_op(tmp_path, monkeypatch):
    monkeypatch.setattr(fastest, "device_name", lambda framework: GPU)
    reports = _reports("jax", "hl_gauss_ce", _row("hl_gauss_ce", "dmc", DMC, reference=3e-4, pallas=1e-4))
    bound = kernels.bind("jax", "auto", shapes=DMC, table=_table(tmp_path, reports))
    assert bound.bound == {"tanh_normal": "reference", "hl_gauss_ce": "pallas", "lambda_returns": "reference"}
    from reppo_fast.kernels.pallas_ops import hl_gauss_ce as module

    assert bound.hl_gauss_ce is module.hl_gauss_ce and bound.hl_gauss_hist is module.hl_gauss_hist
    assert bound.reasons["hl_gauss_ce"].startswith("pallas 3.00x faster than the compiled reference at dmc")
    assert "no jax tanh_normal row" in bound.reasons["tanh_normal"]
    # An explicit choice is bound as asked, whatever the table says.
    table = _table(tmp_path, reports)
    bound = kernels.bind("jax", "auto", {"hl_gauss_ce": "reference"}, shapes=DMC, table=table)
    assert bound.bound["hl_gauss_ce"] == "reference"
    assert bound.reasons["hl_gauss_ce"] == "requested (--kernel-overrides)"


def test_bind_auto_without_shapes_or_gpu_is_the_reference(tmp_path, monkeypatch):
    reports = _reports("jax", "hl_gauss_ce", _row("hl_gauss_ce", "dmc", DMC, reference=3e-4, pallas=1e-4))
    table = _table(tmp_path, reports)
    monkeypatch.setattr(fastest, "device_name", lambda framework: None)
    bound = kernels.bind("jax", "auto", shapes=DMC, table=table)
    assert bound.bound["hl_gauss_ce"] == "reference" and "no GPU for jax" in bound.reasons["hl_gauss_ce"]
    monkeypatch.setattr(fastest, "device_name", lambda framework: GPU)
    bound = kernels.bind("jax", "auto", table=table)
    assert bound.bound == {op: "reference" for op in kernels.OPS}
    assert all("no configured shapes" in why for why in bound.reasons.values())
    assert kernels.bind("jax", "pallas").reasons == {op: "requested (--kernels pallas)" for op in kernels.OPS}


def test_a_triton_pick_without_triton_installed_is_the_reference(monkeypatch):
    reports = _reports("torch", "tanh_normal", _row("tanh_normal", "dmc", DMC, reference=3e-4, triton=1e-4))
    find_spec = binding.importlib.util.find_spec
    monkeypatch.setattr(binding.importlib.util, "find_spec",
                        lambda name, *a: None if name == "triton" else find_spec(name, *a))
    choice = binding._resolve_auto(reports, "torch", "tanh_normal", GPU, DMC)
    assert choice.backend == "reference" and choice.reason.startswith("triton is not installed")


def test_op_shapes_are_one_devices_update_minibatch_and_rollout():
    cfg = Config()  # the paper's DMC setting: 1024 envs x 128 steps in 64 minibatches, 151 bins, 16 samples
    assert fastest.op_shapes(cfg, action_size=21) == DMC
    halves = fastest.op_shapes(cfg, action_size=21, world_size=2)
    assert halves == {**DMC, "B": 1024, "N": 512}
    assert binding.op_shapes is fastest.op_shapes
