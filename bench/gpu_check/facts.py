"""Machine facts, written to a JSON file one fact at a time (a fact that hangs or fails costs only itself):
`python -m bench.gpu_check.facts OUT.json`. Runs as the first phase, so CUDA or JAX failing to start shows
up here, in a box, rather than inside a benchmark."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import traceback
from pathlib import Path

from bench import machine

REPO = Path(__file__).resolve().parents[2]
COMMIT_FILE = REPO / ".whl" / "commit.txt"  # written by scripts/gpu_wheels.sh, travels with the wheels
PACKAGES = ("torch", "triton", "jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "flax", "optax",
            "numpy", "mujoco", "mujoco-mjx", "playground", "brax", "pytest", "pytest-benchmark",
            "pytest-xdist", "mani_skill")
NVIDIA_SMI = ("name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,clocks.mem,"
              "temperature.gpu,power.draw")


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def commit() -> dict:
    """HEAD from git; where the copy has no .git, $GPU_CHECK_COMMIT, else what scripts/gpu_wheels.sh
    recorded when it fetched the wheels (the tree may have changed since: the report says which)."""
    found = machine.commit()
    if found != "unknown":
        return {"commit": found, "source": "git"}
    if os.environ.get("GPU_CHECK_COMMIT"):
        return {"commit": os.environ["GPU_CHECK_COMMIT"], "source": "GPU_CHECK_COMMIT"}
    if COMMIT_FILE.exists():
        return {"commit": COMMIT_FILE.read_text().strip(), "source": "recorded by scripts/gpu_wheels.sh "
                "(no .git in this copy; the tree may have changed after the wheels were fetched)"}
    return {"commit": "unknown", "source": "no .git here: set GPU_CHECK_COMMIT or run scripts/gpu_wheels.sh"}


def nvidia_smi() -> dict:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={NVIDIA_SMI}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"available": False, "why": f"{type(err).__name__}: {err}"}
    fields = [f.strip() for f in out.stdout.strip().splitlines()[0].split(",")] if out.stdout.strip() else []
    return {"available": out.returncode == 0, **dict(zip(NVIDIA_SMI.split(","), fields)),
            **({} if out.returncode == 0 else {"why": out.stderr.strip()[-300:]})}


def torch_facts() -> dict:
    import torch

    facts = {"cuda": torch.cuda.is_available(), "torch_cuda": torch.version.cuda,
             "device": machine.device_name(), "slug": device_slug(machine.device_name())}
    if facts["cuda"]:
        props = torch.cuda.get_device_properties(0)
        facts.update(capability=".".join(map(str, torch.cuda.get_device_capability())),
                     multiprocessors=props.multi_processor_count,
                     memory_gib=round(props.total_memory / 2**30, 1),
                     tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    return facts


def jax_facts() -> dict:
    import jax

    return {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()]}


def host() -> dict:
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()[0],
            "environment": {k: v for k, v in os.environ.items()
                            if k.startswith(("XLA_", "JAX_", "TRITON_", "CUDA_", "OMP_", "TORCH"))}}


def device_slug(name: str) -> str:
    """"NVIDIA H200" -> "nvidia-h200" (bench/README.md's name for a GPU's report); a CPU -> "cpu"."""
    if name.startswith("CPU"):
        return "cpu"
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def main(path: str) -> int:
    facts, failed = {}, False
    for name, fn in (("versions", versions), ("commit", commit), ("nvidia_smi", nvidia_smi),
                     ("torch", torch_facts), ("jax", jax_facts), ("host", host)):
        try:
            facts[name] = fn()
        except Exception as err:  # noqa: BLE001 - a failing fact is itself the finding
            facts[name] = {"error": f"{type(err).__name__}: {err}"[:600],
                           "where": traceback.format_exc()[-1500:]}
            failed = True
        Path(path).write_text(json.dumps(facts, indent=1, default=str))
        print(f"{name}: {json.dumps(facts[name], default=str)[:400]}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
