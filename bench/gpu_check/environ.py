"""The process variables every phase inherits, set once in the driver before any phase starts."""

from __future__ import annotations

import os

JAX_CACHE = "/tmp/reppo_fast_jax_cache"
SHOWN = ("OMP_WAIT_POLICY", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION",
         "JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "TRITON_INTERPRET",
         "CUDA_VISIBLE_DEVICES", "JAX_PLATFORMS", "PYTHONPATH")


def configure(dry_run: bool) -> dict[str, str]:
    """Set the variables in os.environ (phases inherit them) and return the ones that matter here."""
    # torch's OpenMP threads spin while idle and fight XLA's thread pool in the same process; read when
    # torch loads libgomp, so before process_env imports torch.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if dry_run:
        # The same run on any machine: no GPU for torch or JAX, so Triton kernels run in the interpreter.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["JAX_PLATFORMS"] = "cpu"
    else:
        # The check measures compiled kernels: a TRITON_INTERPRET=1 left in the shell would time the
        # interpreter instead.
        os.environ.pop("TRITON_INTERPRET", None)
    from reppo_fast import process_env

    # The project's rule: JAX does not preallocate the GPU torch shares; the interpreter without CUDA only.
    process_env.configure(triton_interpreter_without_cuda=True)
    # The GPU machine stays warm ~30 s after a call: a rerun there skips the XLA compilations.
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", JAX_CACHE)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    # Logs reach their files as they are written, so a cut phase still shows how far it got.
    os.environ["PYTHONUNBUFFERED"] = "1"
    return {name: os.environ[name] for name in SHOWN if name in os.environ}
