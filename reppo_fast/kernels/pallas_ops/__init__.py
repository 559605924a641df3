"""Pallas kernels for the three hot ops (JAX path), one module per op with the JAX reference's public
names. `interpret` runs the same kernel as plain JAX on CPU (tests); on GPU the kernels lower through
the Triton backend chosen in `_compat.py`, the one place for version-fragile Pallas imports."""
