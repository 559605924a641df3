"""Test-session setup. Without a GPU the Triton kernels can only run in Triton's interpreter, which
reads TRITON_INTERPRET when triton is first imported: set it before any test module imports triton."""

import os


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if not _has_cuda():
    os.environ.setdefault("TRITON_INTERPRET", "1")
