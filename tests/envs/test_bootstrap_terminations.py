"""bootstrap_terminations (contract_jax.py, contract_torch.py): every episode end bootstraps except a
non-finite one, whose next_obs is a placeholder."""

import jax.numpy as jnp
import numpy as np
import torch

from reppo_fast.envs import contract_jax, contract_torch

# Four envs: running, time limit, real termination, non-finite physics (the contract marks it terminated).
TERMINATED = [False, False, True, True]
TRUNCATED = [False, True, False, False]
NONFINITE = [False, False, False, True]
EXPECTED_TERMINATED = [False, False, False, True]
EXPECTED_TRUNCATED = [False, True, True, False]


def _fields(array, bool_array):
    obs = array(np.arange(8, dtype=np.float32).reshape(4, 2))
    return dict(obs=obs, next_obs=obs + 1, reward=array(np.ones(4, np.float32)),
                terminated=bool_array(TERMINATED), truncated=bool_array(TRUNCATED),
                nonfinite=bool_array(NONFINITE))


def test_jax():
    step = contract_jax.EnvStep(**_fields(jnp.asarray, lambda x: jnp.array(x, bool)))
    out = contract_jax.bootstrap_terminations(step)
    np.testing.assert_array_equal(out.terminated, EXPECTED_TERMINATED)
    np.testing.assert_array_equal(out.truncated, EXPECTED_TRUNCATED)
    for name in ("obs", "next_obs", "reward", "nonfinite"):
        assert getattr(out, name) is getattr(step, name)


def test_torch():
    step = contract_torch.EnvStep(**_fields(torch.from_numpy, lambda x: torch.tensor(x)))
    out = contract_torch.bootstrap_terminations(step)
    assert out.terminated.tolist() == EXPECTED_TERMINATED
    assert out.truncated.tolist() == EXPECTED_TRUNCATED
    for name in ("obs", "next_obs", "reward", "nonfinite"):
        assert getattr(out, name) is getattr(step, name)
