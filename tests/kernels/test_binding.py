"""The explicit kernel binding: choices, overrides, errors, and lazy imports."""

import importlib
import subprocess
import sys

import pytest

from reppo_fast import kernels
from reppo_fast.kernels import binding


@pytest.mark.parametrize("framework", ["jax", "torch"])
@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_bind_reference(framework, backend):
    # Without the configured shapes "auto" cannot consult the GPU benchmark table: the reference, on any
    # machine (tests/kernels/test_auto_table.py covers auto with shapes).
    reference = importlib.import_module(f"reppo_fast.kernels.reference_{framework}")
    bound = kernels.bind(framework, backend)
    assert isinstance(bound, kernels.KernelSet) and bound.framework == framework
    assert bound.bound == {op: "reference" for op in kernels.OPS}  # "auto" is resolved, never recorded
    assert set(bound.reasons) == set(kernels.OPS)
    for name in ("tanh_normal", "hl_gauss_ce", "hl_gauss_decode", "hl_gauss_hist", "lambda_returns"):
        assert getattr(bound, name) is getattr(reference, name)


def test_overrides_apply_per_op():
    bound = kernels.bind("torch", "reference", overrides={"lambda_returns": "auto"})
    assert bound.bound["lambda_returns"] == "reference"
    pallas = kernels.bind("jax", "reference", overrides={"hl_gauss_ce": "pallas"})
    from reppo_fast.kernels.pallas_ops import hl_gauss_ce as module

    assert pallas.bound["hl_gauss_ce"] == "pallas" and pallas.hl_gauss_decode is module.hl_gauss_decode


def test_pallas_binds_and_auto_stays_on_the_reference_for_jax():
    assert kernels.bind("jax", "pallas").bound == {op: "pallas" for op in kernels.OPS}
    assert kernels.bind("jax", "auto").bound == {op: "reference" for op in kernels.OPS}


def test_triton_binds_per_op_and_refuses_cpu_without_the_interpreter(monkeypatch):
    pytest.importorskip("triton")
    bound = kernels.bind("torch", "reference", overrides={"lambda_returns": "triton"})
    assert bound.bound == {"tanh_normal": "reference", "hl_gauss_ce": "reference", "lambda_returns": "triton"}
    from reppo_fast.kernels.triton_ops import lambda_returns as module

    assert bound.lambda_returns is module.lambda_returns
    if not binding._torch_cuda():
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
        with pytest.raises(kernels.KernelUnavailableError, match="need a CUDA GPU.*TRITON_INTERPRET=1"):
            kernels.bind("torch", "triton")
        dmc = {"B": 2048, "A": 21, "K": 151, "S": 16, "T": 128, "N": 1024}
        auto = kernels.bind("torch", "auto", shapes=dmc)  # auto: no GPU, no Triton
        assert auto.bound["tanh_normal"] == "reference" and "no GPU" in auto.reasons["tanh_normal"]


@pytest.mark.parametrize("args,match", [
    (("tensorflow", "auto", None), r"unknown framework 'tensorflow'.*\('jax', 'torch'\)"),
    (("jax", "triton", None), r"unknown backend 'triton'.*\('auto', 'reference', 'pallas'\)"),
    (("torch", "cuda", None), r"unknown backend 'cuda'.*\('auto', 'reference', 'triton'\)"),
    (("torch", "auto", {"hl_gauss_decode": "reference"}), r"unknown op 'hl_gauss_decode'.*tanh_normal"),
    (("jax", "auto", {"tanh_normal": "triton"}), r"unknown backend 'triton' for op 'tanh_normal'.*pallas"),
])
def test_unknown_names_raise_value_error_listing_choices(args, match):
    with pytest.raises(ValueError, match=match):
        kernels.validate_choice(*args)
    with pytest.raises(ValueError, match=match):
        kernels.bind(*args)


def test_import_error_is_reported_not_swallowed(monkeypatch):
    key = ("torch", "reference", "tanh_normal")
    monkeypatch.setitem(binding._MODULES, key, "reppo_fast.kernels.no_such_module")
    with pytest.raises(kernels.KernelUnavailableError, match=r"'reference'.*no_such_module") as info:
        kernels.bind("torch", "reference")
    assert isinstance(info.value.__cause__, ImportError)


def test_importing_the_package_and_validating_loads_no_framework():
    code = ("import sys, reppo_fast.kernels as k;"
            "k.validate_choice('torch', 'triton', {'lambda_returns': 'auto'});"
            "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
