"""The one table of benchmark shapes, each row drawn from a real configuration.

Symbols (as in docs/algorithms.md): B minibatch rows, A action dims, K HL-Gauss bins, S KL samples, T rollout
steps, N envs, H critic width. tanh_normal runs on (B, A, S), hl_gauss_ce on (B, K), lambda_returns on (T, N).
"""

from __future__ import annotations

from typing import NamedTuple


class Shape(NamedTuple):
    name: str
    B: int
    A: int
    K: int
    S: int
    T: int
    N: int
    H: int
    source: str

    def dims(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("B", "A", "K", "S", "T", "N", "H")}


SHAPES = {
    shape.name: shape
    for shape in (
        # The `cpu` preset on CartpoleBalance: 256 envs x 16 steps in 8 minibatches, one action dim.
        Shape("small", B=512, A=1, K=151, S=16, T=16, N=256, H=128,
              source="`cpu` preset, CartpoleBalance (B = 256 x 16 / 8)"),
        # The paper's DM Control setting (docs/algorithms.md section 7) on HumanoidRun (21 actuators).
        Shape("dmc", B=2048, A=21, K=151, S=16, T=128, N=1024, H=512,
              source="paper DMC setting, HumanoidRun (B = 1024 x 128 / 64)"),
        # Humanoid locomotion: B and the 1024-wide critic from the issue; A = 29 actuators of
        # mujoco_playground's Unitree G1. T x N = 32 x 4096 (B x 16 minibatches) is our assumption: no
        # published config fixes it.
        Shape("humanoid", B=8192, A=29, K=151, S=16, T=32, N=4096, H=1024,
              source="humanoid locomotion (Unitree G1, A = 29; T x N assumed)"),
        # Large enough (hundreds of MB per call, far beyond an H100's 50 MB L2) to read achieved bandwidth.
        Shape("large", B=262144, A=21, K=151, S=16, T=128, N=262144, H=512,
              source="bandwidth probe (B >= 65536)"),
    )
}

# What runs where unless --bench-shapes says otherwise: every row on a GPU; on a CPU the two smaller rows
# for references, compiled references and XLA, and only `small` for kernels run by an interpreter.
GPU_DEFAULT = tuple(SHAPES)
CPU_DEFAULT = ("small", "dmc")
INTERPRETER_SHAPES = ("small",)
