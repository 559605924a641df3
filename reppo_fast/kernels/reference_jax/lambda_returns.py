"""Soft lambda-returns with terminated/truncated handling: the reverse scan (docs/algorithms.md section 4)."""

import jax
import jax.numpy as jnp

from ._dtype import compute_dtype


def lambda_returns(rewards, next_values, terminated, truncated, *, gamma, lmbda) -> jax.Array:
    """Lambda-returns [T, N] of a rollout; every input is [T, N].

    rewards r_t (the soft rewards), next_values V_{t+1} = next_values[t] (the value of the true
    next observation), terminated/truncated bool or float (nonzero = set). With G_T := V_T:

        G_t = r_t + gamma (1 - terminated_t) [ truncated_t V_{t+1}
                                               + (1 - truncated_t) (lmbda G_{t+1} + (1 - lmbda) V_{t+1}) ]

    A terminated step does not bootstrap (it wins over truncated); a truncated step bootstraps from
    its own V_{t+1} and ignores G_{t+1}, which belongs to the next episode. No gradient.
    Dtype: float32/float64 follow rewards/next_values; anything else is computed and returned in float32.
    """
    dtype = compute_dtype(rewards, next_values)
    rewards = jax.lax.stop_gradient(jnp.asarray(rewards).astype(dtype))
    next_values = jax.lax.stop_gradient(jnp.asarray(next_values).astype(dtype))
    terminated = jnp.asarray(terminated) != 0
    truncated = jnp.asarray(truncated) != 0
    if not rewards.shape == next_values.shape == terminated.shape == truncated.shape:
        raise ValueError("rewards, next_values, terminated and truncated must share one [T, N] shape")
    if rewards.shape[0] == 0:
        raise ValueError("lambda_returns needs T >= 1")

    def step(next_return, xs):
        reward, next_value, term, trunc = xs
        # Selects, not (1 - flag) masks: a NaN in a value that is not used must not leak (NaN * 0 = NaN).
        bootstrap = jnp.where(trunc, next_value, lmbda * next_return + (1.0 - lmbda) * next_value)
        ret = reward + jnp.where(term, 0.0, gamma * bootstrap)
        return ret, ret

    # The carry starts at G_T = V_T = next_values[T-1]; lmbda G_T + (1 - lmbda) V_T is then just V_T.
    _, returns = jax.lax.scan(step, next_values[-1], (rewards, next_values, terminated, truncated),
                              reverse=True)
    return returns
