"""Process-wide settings read once by the libraries below us (the environment variables, the known library
warnings), in one place, and the device the Triton kernels run on.

Ordering: `configure` must run before triton and jax are first imported (triton reads TRITON_INTERPRET
at import) and before JAX initialises its backend (XLA_PYTHON_CLIENT_* are read then): call it first
thing in an entry point or a conftest. It imports torch (to ask whether CUDA is there), which is
harmless: torch does not read these variables. Importing this module does nothing.
"""

import ctypes.util
import os
import warnings

# Library warnings that say nothing actionable here, silenced per process (see quiet_known_warnings).
KNOWN_WARNINGS = (
    # SAPIEN without a system libvulkan falls back to the loader it bundles, which is what ManiSkill runs on
    # here (README): said once per process, and once per ManiSkill worker process.
    "Failed to find system libvulkan",
)


def _torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def configure(*, triton_interpreter_without_cuda: bool) -> None:
    """Set what must be set before triton and jax start; a variable the user set is never overridden.

    - XLA_PYTHON_CLIENT_PREALLOCATE=false (unless XLA_PYTHON_CLIENT_PREALLOCATE or
      XLA_PYTHON_CLIENT_MEM_FRACTION is set): torch and JAX share the GPU, and JAX would otherwise take
      75 % of its memory at start.
    - triton_interpreter_without_cuda: when torch sees no CUDA device, TRITON_INTERPRET=1, the only way
      Triton kernels run on a CPU (tests, benches). With CUDA it is not touched: the kernels compile.
    """
    if not {"XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION"} & os.environ.keys():
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if triton_interpreter_without_cuda and not _torch_cuda():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    quiet_known_warnings()


# Headless MuJoCo GL backends (MUJOCO_GL): the library each loads and the Debian package that ships it.
GL_LIBRARIES = {"egl": ("EGL", "libegl1"), "osmesa": ("OSMesa", "libosmesa6")}


def configure_gl() -> str | None:
    """MUJOCO_GL for headless MuJoCo rendering (videos): `egl` where torch sees a CUDA GPU, `osmesa` (software
    rendering) otherwise; a MUJOCO_GL the user set is kept. Returns the backend in force, or None.

    mujoco picks its GL backend when it is first imported, so call this before that (first thing in an entry
    point). Where the backend's library is missing nothing is set, so that importing mujoco stays exactly as
    without this call (training never renders); a video then says which package to install.
    PYOPENGL_PLATFORM, which PyOpenGL reads at its import, follows the backend unless the user set it.
    """
    backend = os.environ.get("MUJOCO_GL")
    if not backend:
        backend = "egl" if _torch_cuda() else "osmesa"
        if ctypes.util.find_library(GL_LIBRARIES[backend][0]) is None:
            return None
        os.environ["MUJOCO_GL"] = backend
    if backend in GL_LIBRARIES:
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend


def quiet_known_warnings() -> None:
    """Ignore KNOWN_WARNINGS in this process (configure does it; a worker process calls it itself)."""
    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def triton_device() -> str:
    """The torch device Triton kernels run on in this process: "cuda" when they compile for the GPU,
    "cpu" when they run in Triton's interpreter (no CUDA, or TRITON_INTERPRET=1 asked for)."""
    return "cuda" if _torch_cuda() and os.environ.get("TRITON_INTERPRET") != "1" else "cpu"
