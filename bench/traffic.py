"""Bytes a perfectly fused implementation of each op must move: every input read once, every output (and,
for forward+backward, every upstream gradient and input gradient) read or written once.

This is a floor, not a model of any implementation: a backward kernel that re-reads the inputs (cheaper
than saving intermediates) moves more. GB/s = these bytes / median time, so it is comparable across
implementations of one op. Values are float32 (4 bytes), terminated/truncated flags bool (1 byte).
"""

from __future__ import annotations

from bench.shapes import Shape

F32 = 4
FLAG = 1


def _tanh_normal(shape: Shape, backward: bool) -> int:
    B, A, S = shape.B, shape.A, shape.S
    # mean, log_std, noise, old_mean, old_log_std [B, A] and old_noise [S, B, A] in; action [B, A],
    # log_prob [B] and kl [B] out.
    elements = (5 + S) * B * A + B * A + 2 * B
    if backward:
        # upstream d/daction [B, A], d/dlog_prob and d/dkl [B] in; d/dmean and d/dlog_std [B, A] out.
        elements += B * A + 2 * B + 2 * B * A
    return F32 * elements


def _hl_gauss_ce(shape: Shape, backward: bool) -> int:
    B, K = shape.B, shape.K
    elements = B * K + B + B  # logits [B, K] and targets [B] in, loss [B] out
    if backward:
        elements += B + B * K  # upstream d/dloss [B] in, d/dlogits [B, K] out
    return F32 * elements


def _lambda_returns(shape: Shape, backward: bool) -> int:
    if backward:
        raise ValueError("lambda_returns has no backward (its inputs get no gradient)")
    cells = shape.T * shape.N
    # rewards, next_values in, returns out (float32); terminated, truncated in (bool).
    return F32 * 3 * cells + FLAG * 2 * cells


_BYTES = {"tanh_normal": _tanh_normal, "hl_gauss_ce": _hl_gauss_ce, "lambda_returns": _lambda_returns}


def min_bytes(op: str, mode: str, shape: Shape) -> int:
    """The floor on memory traffic of `op` in `mode` ("fwd" or "fwdbwd") at `shape`."""
    return _BYTES[op](shape, backward=mode == "fwdbwd")
