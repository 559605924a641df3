"""The plot command on real tiny runs, and the reliable-performance metric on hand-made curves."""

from pathlib import Path

import numpy as np
import pytest

from reppo_fast import plot
from reppo_fast.config import Config
from reppo_fast.curves import Run, at_steps, group_runs, load_run, reliable_fraction, reliable_since
from reppo_fast.runner import run


def _curve(returns, steps=None):
    steps = np.arange(1, len(returns) + 1, dtype=float) * 100 if steps is None else np.asarray(steps, float)
    return Run(Path("."), "CartpoleBalance", "ppo", "jax", 0, steps, steps / 10, np.asarray(returns, float))


def test_reliable_since_is_the_start_of_the_last_stretch_above_threshold():
    assert reliable_since(_curve([100, 950, 800, 920, 930]), 900) == 400  # dipped at 300: counts from 400
    assert reliable_since(_curve([950, 960]), 900) == 100
    assert reliable_since(_curve([950, 850]), 900) is None  # ended below
    assert reliable_since(_curve([900, 899.9, 900]), 900) == 300  # the threshold itself counts as reached


def test_reliable_fraction_counts_runs_from_their_reliable_step():
    runs = [_curve([950, 960, 970]), _curve([100, 950, 960]), _curve([950, 100, 100])]
    grid = np.array([100.0, 200.0, 300.0])
    np.testing.assert_allclose(reliable_fraction(runs, 900, grid), [1 / 3, 2 / 3, 2 / 3])


def test_plot_writes_a_png_of_real_runs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    dirs = []
    for algo, seed in (("reppo", 0), ("ppo", 0), ("ppo", 1)):
        cfg = Config().replace(
            env="ToyPointMass", algo=algo, seed=seed, num_envs=8, num_steps=8, num_epochs=1,
            num_minibatches=2, actor_hidden=16, critic_hidden=16, critic_hidden_blocks=2,
            num_bins=21, v_min=0.0, v_max=100.0, num_eval_envs=4, eval_interval=1, checkpoint_interval=10,
            progress=False, gamma=0.99, total_steps=3 * 64, run_dir=str(tmp_path / f"{algo}{seed}"))
        dirs.append(str(run(cfg)))
    out = tmp_path / "curves.png"
    assert plot.main([*dirs, "--out", str(out), "--threshold", "30"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "ToyPointMass ppo (jax): 2 run(s)" in printed and "reliably >= 30" in printed


def test_plot_names_a_directory_without_a_run(tmp_path, capsys):
    assert plot.main([str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_at_steps_interpolates_between_evaluations_and_stops_past_the_last():
    run_ = _curve([100, 300, 500], steps=[1000, 2000, 3000])  # seconds are steps / 10
    assert at_steps(run_, 1500) == (200.0, 150.0)
    assert at_steps(run_, 3000) == (500.0, 300.0)
    assert at_steps(run_, 3020) == (500.0, 300.0)  # within 1% of the last evaluation: the last one
    assert at_steps(run_, 3100) is None


def test_table_and_label_by_split_curves_by_a_config_field(capsys):
    runs = []
    for seed, epochs, returns in ((0, 5, [400, 800]), (1, 5, [600, 900]), (0, 1, [100, 200])):
        r = _curve(returns, steps=[500_000, 1_000_000])
        r.seed, r.algo, r.config = seed, "rpo", {"rpo_epochs": epochs}
        runs.append(r)
    assert sorted(group_runs(runs)) == ["rpo (jax)"]
    groups = group_runs(runs, ("rpo_epochs",))
    assert sorted(groups) == ["rpo (jax), rpo_epochs=1", "rpo (jax), rpo_epochs=5"]
    rows = plot._table("CartpoleSwingup", runs, [1_000_000, 2_000_000], ("rpo_epochs",))
    by_label = {row.split(" x")[0]: row for row in rows[2:]}
    assert "850 (800..900) 100000 s" in by_label["rpo (jax), rpo_epochs=5"]
    assert by_label["rpo (jax), rpo_epochs=1"].rstrip().endswith("-")  # 2M not reached


def test_label_by_reads_an_algorithms_fields_only_from_its_own_runs(tmp_path):
    """Every config.json holds every group: a REPPO run's rpo_epochs is a default it never read."""
    for algo in ("reppo", "rpo"):
        (tmp_path / algo).mkdir()
        (tmp_path / algo / "config.json").write_text(Config().replace(algo=algo, rpo_epochs=3).to_json())
        (tmp_path / algo / "eval.jsonl").write_text(
            '{"iteration": 1, "env_steps": 10, "eval/return": 1.0, "wall_time": 0.5}\n')
    labels = [load_run(tmp_path / algo).labelled_by(("rpo_epochs", "num_envs")) for algo in ("reppo", "rpo")]
    assert labels == ["reppo (jax), num_envs=1024", "rpo (jax), rpo_epochs=3, num_envs=1024"]
