"""What every Triton launcher shares: launching on the device that holds the tensors."""

import contextlib

import torch


def on_device(x: torch.Tensor):
    """A context in which a Triton launch runs on `x`'s GPU.

    Triton launches on the *current* CUDA device, not on the device of the tensors it is given: with
    tensors on cuda:1 and cuda:0 current, the kernel would run on GPU 0 and dereference GPU 1 pointers.
    On CPU tensors (Triton's interpreter) there is no device to enter."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()
