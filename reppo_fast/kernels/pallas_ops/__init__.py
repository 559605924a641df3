"""Pallas kernels for the three hot ops (JAX path), one module per op with the JAX reference's public
names plus one keyword, `interpret` (None: run the kernel body as plain JAX unless JAX runs on a GPU).
On GPU the kernels lower through the Triton backend chosen in `_compat.py`, the one place for
version-fragile Pallas imports; `_common.py` holds what the three share (the `interpret` rule, block
shapes, padding, the pallas_call launcher)."""
