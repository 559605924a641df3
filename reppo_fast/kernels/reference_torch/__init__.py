"""Eager PyTorch reference implementations of the kernel ops (the gold the Triton kernels are checked
against)."""

from .hl_gauss_ce import hl_gauss_ce, hl_gauss_decode, hl_gauss_hist
from .lambda_returns import lambda_returns
from .tanh_normal import TanhNormalOut, tanh_normal

__all__ = [
    "TanhNormalOut", "hl_gauss_ce", "hl_gauss_decode", "hl_gauss_hist", "lambda_returns", "tanh_normal",
]
