"""The table `--kernels auto` reads (reppo_fast/kernels/fastest.json), written from a GPU run's results.

`python -m bench.report RESULTS.json --write-table` replaces the run's GPU entry with, per framework, op and
measured shape, the median seconds per call in the mode training runs the op (fwd+bwd for tanh_normal and
hl_gauss_ce, fwd for lambda_returns) of:

- the compiled reference: torch, the faster of torch-compile and torch-compile+graph (the trainer runs the
  reference compiled, under CUDA graphs on a GPU); JAX, jax-xla;
- each kernel backend: triton, the faster of triton and triton+graph (graphed or not, like the reference it
  is compared with); pallas.

Interpreted rows (Triton's interpreter, Pallas interpret mode) are left out, and a CPU run is refused: neither
says anything about a GPU. The reader and its rule are in reppo_fast/kernels/fastest.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.results import Result, Results
from bench.shapes import SHAPES
from reppo_fast.kernels import fastest

REFERENCE = {"torch": ("torch-compile", "torch-compile+graph"), "jax": ("jax-xla",)}
KERNELS = {"torch": {"triton": ("triton", "triton+graph")}, "jax": {"pallas": ("pallas",)}}


def _best(r: Results, op: str, mode: str, shape: str, variants: tuple[str, ...]) -> Result | None:
    found = [res for v in variants if (res := r.ops.get((op, mode, shape, v))) is not None
             and not res.info.get("interpreted")]
    return min(found, key=lambda res: res.median, default=None)


def _row(r: Results, framework: str, op: str, shape: str) -> dict | None:
    """One measured shape: seconds and the variant behind them, per backend; None without a reference."""
    mode = fastest.TRAINING_MODE[op]
    reference = _best(r, op, mode, shape, REFERENCE[framework])
    if reference is None:
        return None
    found = {"reference": reference}
    for backend, variants in KERNELS[framework].items():
        if (kernel := _best(r, op, mode, shape, variants)) is not None:
            found[backend] = kernel
    dims = reference.info.get("dims") or SHAPES[shape].dims()
    return {"shape": shape, "dims": {d: dims[d] for d in fastest.OP_DIMS[op]}, "mode": mode,
            "seconds": {b: res.median for b, res in found.items()},
            "variants": {b: res.info["variant"] for b, res in found.items()}}


def entry(r: Results) -> dict:
    """The table's entry for the run's GPU. Raises ValueError for a CPU run or one without op timings."""
    if not r.on_gpu:
        raise ValueError(f"refusing to write the kernel table from a CPU run ({r.meta.get('device')}): "
                         "CPU and interpreter times say nothing about a GPU")
    order = list(SHAPES)
    measured = sorted({k[2] for k in r.ops}, key=lambda s: (order.index(s) if s in order else len(order), s))
    ops: dict[str, dict[str, list]] = {}
    for framework in REFERENCE:
        for op in fastest.OP_DIMS:
            rows = [row for shape in measured if (row := _row(r, framework, op, shape)) is not None]
            if rows:
                ops.setdefault(framework, {})[op] = rows
    if not ops:
        raise ValueError("no per-op timings of a compiled reference in the training modes "
                         f"({fastest.TRAINING_MODE}): nothing to write to the kernel table")
    return {"commit": r.meta.get("commit"), "datetime": r.meta.get("datetime"),
            "versions": r.meta.get("versions"), "ops": ops}


def write(r: Results, path: Path = fastest.TABLE) -> str:
    """Replace the run's GPU entry in the table at `path` (created if missing); returns the GPU's name."""
    path, new = Path(path), entry(r)
    data = json.loads(path.read_text()) if path.exists() else {"schema": fastest.SCHEMA, "reports": {}}
    if data.get("schema") != fastest.SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r}, this writer knows {fastest.SCHEMA}")
    data["reports"][r.meta["device"]] = new
    data["reports"] = dict(sorted(data["reports"].items()))
    path.write_text(json.dumps(data, indent=1) + "\n")
    return r.meta["device"]
