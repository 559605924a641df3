"""Triton kernels for the three hot ops (torch path), one module per op with the reference's public names.

Each op is a `torch.library.custom_op` with fake and autograd registrations, so torch.compile sees it as
one opaque op and CUDA graphs can capture it. On CPU the kernels run under TRITON_INTERPRET=1 (tests).
`_common.py` holds what the three share (device guard, launch shape, bf16 store rounding) and the names
of sizes and strides. The ahead-of-time compile checks for sm_90 (example signatures of every kernel) live
with the tests (tests/kernels/test_triton_*.py), not here.
"""
