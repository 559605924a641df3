"""The dtype rule shared by the JAX references."""

import jax.numpy as jnp


def compute_dtype(*arrays) -> jnp.dtype:
    """float32 or float64: the dtype a reference computes and returns in.

    Inputs promote as usual; float32 and float64 are kept, anything else (bf16, f16, integers) is
    computed in float32 and returned as float32, so a low-precision caller never silently loses the
    accuracy the references exist to provide. Under JAX's default (x64 off) float64 cannot occur.
    """
    dtype = jnp.result_type(*(jnp.asarray(a).dtype for a in arrays if a is not None))
    return dtype if dtype in (jnp.float32, jnp.float64) else jnp.dtype(jnp.float32)
