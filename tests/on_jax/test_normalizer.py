"""Running observation statistics against a float64 numpy oracle over everything seen."""

import jax.numpy as jnp
import numpy as np

from reppo_fast.on_jax.common import NORM_EPS, norm_init, norm_update, normalize


def test_parallel_update_matches_full_batch_statistics():
    rng = np.random.default_rng(1)
    batches = [rng.normal(loc=3.0, scale=s, size=(n, 4))
               for n, s in [(5, 1.0), (17, 4.0), (1, 2.0), (64, 0.5)]]
    state = norm_init(4)
    for b in batches:
        state = norm_update(state, jnp.asarray(b, jnp.float32))
    seen = np.concatenate(batches)
    np.testing.assert_allclose(state.mean, seen.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.var, seen.var(0), rtol=1e-4, atol=1e-5)
    assert float(state.count) == len(seen)
    x = rng.normal(size=(2, 4))
    np.testing.assert_allclose(normalize(state, jnp.asarray(x, jnp.float32)),
                               (x - seen.mean(0)) / np.sqrt(seen.var(0) + NORM_EPS), rtol=1e-4, atol=1e-5)
