"""The blow-up test of the env contracts (contract_jax.blown_up_rows and its torch twin) against a brute-force
loop over the entries: a row is blown up when any entry is NaN, +-inf, or beyond +-limit."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reppo_fast.envs.contract_jax import blown_up_rows as blown_up_jax
from reppo_fast.envs.contract_torch import blown_up_rows as blown_up_torch


def _oracle(x: np.ndarray, limit: float) -> list[bool]:
    return [any(math.isnan(v) or math.isinf(v) or abs(v) > limit for v in row.reshape(-1).tolist())
            for row in x]


def _rows() -> np.ndarray:
    x = np.random.default_rng(0).normal(size=(12, 2, 3)).astype(np.float32)
    x[1, 0, 0], x[2, 1, 2], x[3, 0, 1] = np.nan, np.inf, -np.inf
    x[4, 1, 1], x[5, 0, 2] = 1e4, -1.0001e4  # at the limit (kept) and just beyond it (blown up)
    x[6, 0, 0] = 3e38  # finite and huge
    return x


@pytest.mark.parametrize("limit", [1e4, math.inf])
def test_blown_up_rows_match_a_loop_over_the_entries(limit):
    x = _rows()
    want = _oracle(x, limit)
    assert want[:7] == [False, True, True, True, False, limit != math.inf, limit != math.inf]
    assert np.asarray(blown_up_jax(jnp.asarray(x), limit)).tolist() == want
    assert blown_up_torch(torch.from_numpy(x), limit).tolist() == want
