"""What `--kernels auto` binds: the backend the last GPU benchmark report measured fastest at these shapes.

The table `fastest.json` (beside this file) is written by `python -m bench.report RESULTS.json --write-table`
from a GPU run of the benchmark suite, and read here at bind time. Per GPU name (as torch and JAX report it),
framework and op it holds one row per measured shape: the op's dims, the median seconds per call of the
compiled reference and of each kernel backend, in the mode training runs the op (`TRAINING_MODE`).

The rule, per op: find the measured shape nearest the configured one (the smallest |log(n / n_row)| over the
op's element count n, `size`), only within a factor `MAX_SIZE_RATIO`; bind the fastest kernel there if its
time is strictly below the compiled reference's, else the reference. No GPU, no report for this GPU, no row
near enough: the reference. So auto never binds a kernel that was measured slower than what it replaces.

Importing this module loads neither torch nor jax; `device_name` imports the framework it asks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

TABLE = Path(__file__).with_name("fastest.json")
SCHEMA = 1

# The dims each op's cost depends on (bench/shapes.py's symbols): tanh_normal on [B, A] with S KL samples,
# hl_gauss_ce on [B, K], lambda_returns on [T, N].
OP_DIMS = {"tanh_normal": ("B", "A", "S"), "hl_gauss_ce": ("B", "K"), "lambda_returns": ("T", "N")}
# The mode the trainer runs each op in: the actor loss differentiates tanh_normal and the critic loss
# hl_gauss_ce (forward + backward); lambda_returns computes targets, forward only.
TRAINING_MODE = {"tanh_normal": "fwdbwd", "hl_gauss_ce": "fwdbwd", "lambda_returns": "fwd"}
# A row measured at up to 4x fewer or more elements still says which backend wins; beyond that the
# launch-bound / bandwidth-bound balance may have flipped, so there is no data.
MAX_SIZE_RATIO = 4.0


class Choice(NamedTuple):
    backend: str  # "reference" or a kernel backend ("triton", "pallas")
    reason: str  # why, in one line, for the run's meta.json


def op_shapes(cfg, action_size: int, world_size: int = 1) -> dict[str, int]:
    """The shapes one device runs the ops at, from a Config and the env's action size.

    B is the update's minibatch on one device (cfg.batch_size / world_size), where the differentiated
    calls run 8 x 64 times per iteration at the paper's setting; the rollout's forward-only tanh_normal
    calls at [N, A] are cheaper and not what the table measures. N is this device's envs.
    """
    return {"B": cfg.batch_size // world_size, "A": action_size, "K": cfg.reppo.num_bins,
            "S": cfg.reppo.kl_samples, "T": cfg.num_steps, "N": cfg.num_envs // world_size}


def size(op: str, dims: Mapping[str, int]) -> int:
    """Elements the op touches per call, up to a constant: the product of its dims."""
    return math.prod(dims[d] for d in OP_DIMS[op])


def load_table(path: Path = TABLE) -> dict:
    """The table's reports, by GPU name; {} when none has been recorded."""
    data = json.loads(Path(path).read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r}, this reader knows {SCHEMA}")
    return data["reports"]


def device_name(framework: str) -> str | None:
    """The name of the GPU `framework` computes on (torch.cuda.get_device_name, JAX's device_kind: both the
    CUDA device name, e.g. "NVIDIA H100 80GB HBM3"), None without one. JAX: call it after
    jax.distributed.initialize, as it starts JAX's backend."""
    if framework == "torch":
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else None
    import jax

    if jax.default_backend() not in ("gpu", "cuda", "rocm"):
        return None
    return jax.devices()[0].device_kind


def _dims_text(op: str, dims: Mapping[str, int]) -> str:
    return " ".join(f"{d}={dims[d]}" for d in OP_DIMS[op])


def _nearest(op: str, rows: list[dict], dims: Mapping[str, int]) -> tuple[dict | None, float]:
    """The row of the nearest size (smallest |log(n / n_row)|) and its size ratio, >= 1; ties: by name."""
    n = size(op, dims)
    scored = [(max(n, m) / min(n, m), row["shape"], i) for i, row in enumerate(rows)
              if (m := size(op, row["dims"])) > 0]
    if not scored:
        return None, math.inf
    ratio, _, i = min(scored)
    return rows[i], ratio


def choose(reports: Mapping, framework: str, op: str, device: str | None,
           dims: Mapping[str, int] | None) -> Choice:
    """The backend auto binds for `op` on `device` (None: no GPU) at the configured `dims` (None: unknown)."""
    if dims is None:
        return Choice("reference", "no configured shapes given to bind: the table cannot be consulted")
    if device is None:
        return Choice("reference", f"no GPU for {framework}: the kernels pay only on one")
    report = reports.get(device)
    if report is None:
        return Choice("reference", f"no GPU benchmark report for {device}")
    where = f"report {report['commit']}, {report['datetime']}"
    rows = report["ops"].get(framework, {}).get(op, [])
    row, ratio = _nearest(op, rows, dims)
    if row is None or ratio > MAX_SIZE_RATIO:
        nearest = "" if row is None else f"; nearest {row['shape']} is {ratio:.1f}x off"
        return Choice("reference", f"no {framework} {op} row within {MAX_SIZE_RATIO:g}x of "
                                   f"{_dims_text(op, dims)} ({where}{nearest})")
    seconds = row["seconds"]
    kernels = {k: t for k, t in seconds.items() if k != "reference"}
    at = f"at {row['shape']} ({_dims_text(op, row['dims'])}), {row['mode']}; {where}"
    if not kernels:
        return Choice("reference", f"no kernel measured {at}")
    best = min(kernels, key=kernels.get)
    speedup = seconds["reference"] / kernels[best]
    if kernels[best] < seconds["reference"]:
        return Choice(best, f"{best} {speedup:.2f}x faster than the compiled reference {at}")
    return Choice("reference", f"{best} not faster than the compiled reference ({speedup:.2f}x) {at}")
