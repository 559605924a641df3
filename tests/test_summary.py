"""Issue 17, item 6: the end of a run prints a summary read from its run directory: final and best eval
return with their standard errors, env steps, wall-clock, steps/s, the non-finite counts summed over the
run (every segment of a resumed one), and the commands to plot, watch and resume it."""

import json

from reppo_fast.summary import Eval, format_summary, read, summary_text
from reppo_fast.train import main

# ToyPointMass, 64 env steps an iteration (as tests/on_jax/test_resume.py).
TINY = ["--env", "ToyPointMass", "--preset", "cpu", "--num-envs", "8", "--num-steps", "8",
        "--num-epochs", "2", "--num-minibatches", "2", "--actor-hidden", "16", "--critic-hidden", "16",
        "--num-bins", "21", "--num-eval-envs", "4", "--eval-interval", "2", "--checkpoint-interval", "2",
        "--no-progress"]


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_summary_of_hand_written_files(tmp_path):
    _write(tmp_path / "metrics.jsonl", [
        {"iteration": i, "env_steps": 100 * i, "train/nonfinite": n, "update/skipped_steps": k,
         "time/iteration_s": 2.0, "time/elapsed_s": 2.0 * i + (3.0 if i > 2 else 0.0)}
        for i, n, k in [(1, 0.0, 0.0), (2, 3.0, 1.0), (3, 0.0, 0.0), (4, 2.0, 4.0)]])
    _write(tmp_path / "eval.jsonl", [
        {"iteration": i, "env_steps": 100 * i, "eval/return": r, "eval/return_stderr": e, "wall_time": t}
        for i, r, e, t in [(2, 50.0, 4.0, 7.0), (4, 30.0, 2.5, 12.5)]])
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"iteration": 5, "env_st')  # a killed writer's last line
    s = read(tmp_path)
    assert (s.iterations, s.env_steps, s.nonfinite, s.skipped_steps) == (4, 400, 5.0, 5.0)
    assert s.final == Eval(400, 30.0, 2.5) and s.best == Eval(200, 50.0, 4.0)
    assert s.wall_clock_s == 12.5 and s.steps_per_s == 400 / 8.0  # the last eval ended after iteration 4
    text = format_summary(s, tmp_path)
    lines = text.splitlines()
    assert lines[0] == ("done: 400 env steps (4 iterations) in 12 s of training and evaluation, "
                        "50 env steps/s while training")
    assert lines[1] == ("  eval return: final 30.0 +- 2.5 (stderr) at 400 steps; "
                        "best 50.0 +- 4.0 (stderr) at 200 steps")
    assert "5 env steps reset (train/nonfinite), 5 update steps skipped" in lines[2]
    for command in (f"python -m reppo_fast.plot {tmp_path}", f"python -m reppo_fast.video {tmp_path}",
                    f"python -m reppo_fast.train --resume {tmp_path} --total-steps N"):
        assert command in text


def test_summary_before_any_evaluation(tmp_path):
    _write(tmp_path / "metrics.jsonl", [{"iteration": 1, "env_steps": 64, "time/iteration_s": 0.0,
                                         "time/elapsed_s": 0.0}])
    text = summary_text(tmp_path)
    assert "final none yet; best none yet" in text and "- env steps/s" in text


def test_a_run_ends_with_the_summary_of_every_segment(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main([*TINY, "--total-steps", str(3 * 64), "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("done: ") == 1 and "done: 192 env steps (3 iterations)" in out
    assert f"  resume: python -m reppo_fast.train --resume {run_dir} --total-steps N" in out
    assert main(["--resume", str(run_dir), "--total-steps", str(5 * 64), "--no-progress"]) == 0
    out = capsys.readouterr().out
    evals = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert [e["iteration"] for e in evals] == [2, 3, 4, 5]  # both segments'
    best = max(evals, key=lambda e: e["eval/return"])
    assert "done: 320 env steps (5 iterations)" in out
    assert (f"final {evals[-1]['eval/return']:.1f} +- {evals[-1]['eval/return_stderr']:.1f} (stderr) at 320 "
            f"steps; best {best['eval/return']:.1f}") in out
    assert summary_text(run_dir) in out
