"""Learning parity of `--precision bf16` on CPU (bf16 computed exactly there: XLA:CPU and torch's CPU
matmul take bf16 operands): REPPO learns ToyPointMass as well in bf16 as in float32, on each framework.

ToyPointMass (100-step episodes, reward 1 - tanh(2 |x|^2) per step): a uniformly random policy scores about
22, the zero action about 27, a PD controller about 92, so a final eval return of 60 is learned control.
Calibration (the machine of 2026-12, this config, 100 iterations of 64 x 16 steps, final eval over 32
episodes): float32 / bf16 finals, JAX seeds 0-4: 83.6 / 88.8, 76.1 / 66.1, 87.9 / 74.1, 85.4 / 89.7,
89.3 / 78.8; torch seeds 0-2: 89.7 / 78.3, 85.6 / 91.0, 88.9 / 83.0. A different precision is a different
trajectory from the same seed, so the two finals differ as two seeds' do: at most 13.8 apart above, hence
the tolerance of 25 (a bf16 that learns markedly worse, e.g. 55 against 88, fails it). As in
tests/on_jax/test_learning.py, another CPU's rounding is another trajectory, so a second seed is tried when
the first misses.
"""

import json

import pytest
import torch

from reppo_fast.config import preset_config
from reppo_fast.runner import run

LEARNED = 60.0
TOLERANCE = 25.0
ITERATIONS = 100
SMALL = dict(env="ToyPointMass", num_envs=64, num_steps=16, num_epochs=4, num_minibatches=8, actor_hidden=64,
             critic_hidden=64, episode_length=None, total_steps=64 * 16 * ITERATIONS, eval_interval=50,
             num_eval_envs=32, progress=False)


@pytest.fixture
def one_torch_thread():
    """Networks this small gain nothing from a second thread, and lose a lot when torch's threads spin
    against another busy process (20 iterations: 4.5 s with one thread, 79 s with two on a loaded 2-core
    machine; the same numbers)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _final_eval(tmp_path, framework: str, precision: str, seed: int) -> float:
    cfg = preset_config("cpu", "toy", framework=framework, precision=precision, seed=seed,
                        run_dir=str(tmp_path / f"{framework}-{precision}-{seed}"), **SMALL)
    return json.loads((run(cfg) / "eval.jsonl").read_text().splitlines()[-1])["eval/return"]


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_bf16_learns_like_float32(tmp_path, framework):
    tried = {}
    for seed in (0, 1):
        finals = {precision: _final_eval(tmp_path, framework, precision, seed)
                  for precision in ("float32", "bf16")}
        tried[seed] = finals
        if min(finals.values()) >= LEARNED and abs(finals["bf16"] - finals["float32"]) <= TOLERANCE:
            return
    raise AssertionError(f"bf16 did not learn like float32 (final eval returns by seed): {tried}")
