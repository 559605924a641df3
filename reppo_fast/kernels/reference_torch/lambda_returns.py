"""Soft lambda-returns with terminated/truncated handling: the eager reverse loop (docs/algorithms.md section
4)."""

import torch

from ._dtype import compute_dtype


@torch.no_grad()
def lambda_returns(rewards, next_values, terminated, truncated, *, gamma, lmbda) -> torch.Tensor:
    """Lambda-returns [T, N] of a rollout; every input is [T, N].

    rewards r_t (the soft rewards), next_values V_{t+1} = next_values[t] (the value of the true
    next observation), terminated/truncated bool or float (nonzero = set). With G_T := V_T:

        G_t = r_t + gamma (1 - terminated_t) [ truncated_t V_{t+1}
                                               + (1 - truncated_t) (lmbda G_{t+1} + (1 - lmbda) V_{t+1}) ]

    A terminated step does not bootstrap (it wins over truncated); a truncated step bootstraps from
    its own V_{t+1} and ignores G_{t+1}, which belongs to the next episode. No gradient.
    Dtype: float32/float64 follow rewards/next_values; anything else is computed and returned in float32.

    This is the eager baseline: one Python iteration (a handful of kernel launches) per step.
    """
    dtype = compute_dtype(rewards, next_values)
    rewards = rewards.to(dtype)
    next_values = next_values.to(dtype)
    terminated = terminated != 0
    truncated = truncated != 0
    if not rewards.shape == next_values.shape == terminated.shape == truncated.shape:
        raise ValueError("rewards, next_values, terminated and truncated must share one [T, N] shape")
    num_steps = rewards.shape[0]
    if num_steps == 0:
        raise ValueError("lambda_returns needs T >= 1")

    returns = [None] * num_steps
    next_return = next_values[-1]  # G_T = V_T; lmbda G_T + (1 - lmbda) V_T is then just V_T
    for t in reversed(range(num_steps)):
        # Selects, not (1 - flag) masks: a NaN in a value that is not used must not leak (NaN * 0 = NaN).
        mixed = lmbda * next_return + (1.0 - lmbda) * next_values[t]
        bootstrap = torch.where(truncated[t], next_values[t], mixed)
        next_return = rewards[t] + torch.where(terminated[t], 0.0, gamma * bootstrap)
        returns[t] = next_return
    return torch.stack(returns)
