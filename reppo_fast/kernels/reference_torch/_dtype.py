"""The dtype rule shared by the PyTorch references."""

import functools

import torch


def compute_dtype(*tensors) -> torch.dtype:
    """float32 or float64: the dtype a reference computes and returns in.

    Inputs promote as usual; float32 and float64 are kept, anything else (bf16, f16, integers) is
    computed in float32 and returned as float32, so a low-precision caller never silently loses the
    accuracy the references exist to provide.
    """
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors if t is not None))
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32
