"""Kernels for REPPO's hot ops, one file per op per backend, behind an explicit binding.

The contract (same names, argument order and semantics in every framework and backend; unreduced
outputs; float32/float64 follow the input, lower precisions compute and return float32):

- tanh_normal(mean, log_std, noise, old_mean=None, old_log_std=None, old_noise=None)
      mean, log_std, noise [B, A] (old_mean, old_log_std [B, A], old_noise [S, B, A])
      -> TanhNormalOut(action [B, A], log_prob [B], kl [B] | None)
- hl_gauss_ce(logits, targets, *, v_min, v_max, sigma_ratio=0.75): logits [B, K], targets [B] -> loss [B]
  with hl_gauss_hist(targets, *, num_bins, v_min, v_max, sigma_ratio) -> [B, K]
  and hl_gauss_decode(logits, *, v_min, v_max) -> [B]
- lambda_returns(rewards, next_values, terminated, truncated, *, gamma, lmbda): [T, N] x4 -> returns [T, N]

`bind(framework, backend, overrides)` returns a KernelSet. Importing this package loads neither
torch nor jax; the chosen implementations are imported by `bind`.
"""

from .binding import BACKENDS, FRAMEWORKS, OPS, KernelSet, KernelUnavailableError, bind, validate_choice

__all__ = ["BACKENDS", "FRAMEWORKS", "OPS", "KernelSet", "KernelUnavailableError", "bind", "validate_choice"]
