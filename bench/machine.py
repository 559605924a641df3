"""What the results were measured on: device, library versions, commit. Recorded with every result."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_PACKAGES = ("torch", "triton", "jax", "jaxlib", "mujoco", "playground", "pytest-benchmark")


@functools.cache
def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@functools.cache
def jax_on_gpu() -> bool:
    import jax

    return jax.default_backend() in ("gpu", "cuda", "rocm")


@functools.cache
def device_name() -> str:
    """The GPU's name (e.g. "NVIDIA H100 80GB HBM3"), else the CPU model."""
    if has_cuda():
        import torch

        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "CPU: " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU: " + (platform.processor() or platform.machine())


@functools.cache
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


@functools.cache
def commit() -> str:
    """HEAD's short hash, with "+dirty" when the worktree differs from it; "unknown" outside git."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=_REPO, capture_output=True, text=True, check=True).stdout

    try:
        head = git("rev-parse", "--short=12", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.CalledProcessError):
        return _carried_commit()
    return head + ("+dirty" if dirty else "")


def _carried_commit() -> str:
    """Outside git (the GPU machine gets a copy of the tree without .git): the commit scripts/gpu_wheels.sh
    wrote beside the wheels it sent along, or $GPU_CHECK_COMMIT; "unknown" otherwise."""
    carried = _REPO / ".whl" / "commit.txt"
    if carried.exists():
        return carried.read_text().strip() or "unknown"
    return os.environ.get("GPU_CHECK_COMMIT", "unknown")


def record() -> dict:
    """The fields every result carries in its extra_info. The 1-minute load average says whether other
    work shared the machine (it matters on a CPU)."""
    return {"device": device_name(), "device_kind": "cuda" if has_cuda() else "cpu",
            "versions": versions(), "commit": commit(), "load_avg": round(os.getloadavg()[0], 2)}
