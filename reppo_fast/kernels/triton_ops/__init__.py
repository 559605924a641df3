"""Triton kernels for the three hot ops (torch path), one module per op with the reference's public names.

Each op is a `torch.library.custom_op` with fake and autograd registrations, so torch.compile sees it as
one opaque op and CUDA graphs can capture it. On CPU the kernels run under TRITON_INTERPRET=1 (tests).
Each module also lists `AOT_SPECS`: the kernels with example signatures, compiled ahead of time for sm_90
in CI so that a kernel the GPU compiler would reject fails without a GPU.
"""
