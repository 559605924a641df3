"""Issue 16, items 4 and 7: SIGTERM (a preemption) and SIGUSR1 (SLURM's warning ahead of the time limit)
stop a run after the iteration in progress with a checkpoint, the resume command and a non-zero exit
status; the resumed run continues exactly as an uninterrupted one, and every iteration is logged once, in
order, in metrics.jsonl and TensorBoard."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from reppo_fast.checkpoint import list_checkpoints, load_checkpoint
from reppo_fast.tb_events import scalars

TIME_KEYS = {"time/iteration_s", "time/elapsed_s", "time/env_steps_per_s"}
STEPS_PER_ITERATION = 8 * 8
FLAGS = ["--env", "ToyPointMass", "--no-progress", "--num-envs", "8", "--num-steps", "8", "--num-epochs", "2",
         "--num-minibatches", "2", "--actor-hidden", "16", "--critic-hidden", "16", "--num-bins", "21",
         "--num-eval-envs", "2", "--eval-interval", "1000", "--checkpoint-interval", "1000", "--seed", "4"]


def _train(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "reppo_fast.train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _iterations(run_dir) -> int:
    path = run_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _records(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _tb(run_dir) -> dict:
    return {tag: points for tag, points in scalars(run_dir / "tb").items() if tag not in TIME_KEYS}


@pytest.mark.parametrize("framework, signum", [("jax", signal.SIGTERM), ("torch", signal.SIGUSR1)])
def test_a_signal_stops_with_a_checkpoint_and_the_run_resumes_exactly(tmp_path, framework, signum):
    part = tmp_path / "part"
    proc = _train([*FLAGS, "--framework", framework, "--run-dir", str(part), "--total-steps",
                   str(100_000 * STEPS_PER_ITERATION)])
    deadline = time.time() + 600
    while _iterations(part) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 128 + signum, err
    stopped = _iterations(part)
    name = signal.Signals(signum).name
    assert f"{name} received" in err and "Traceback" not in err
    assert (f"stopped by {name} after iteration {stopped}; checkpoint saved. Continue with: "
            f"python -m reppo_fast.train --resume {part}") in out
    ckpts = list_checkpoints(part / "checkpoints")
    assert [load_checkpoint(p)[1]["iteration"] for p in ckpts] == [stopped]

    total = str((stopped + 3) * STEPS_PER_ITERATION)
    resumed = _train(["--resume", str(part), "--total-steps", total])
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    full = tmp_path / "full"
    uninterrupted = _train([*FLAGS, "--framework", framework, "--run-dir", str(full), "--total-steps", total])
    assert uninterrupted.wait(timeout=600) == 0

    assert [r["iteration"] for r in _records(part)] == list(range(1, stopped + 4))
    assert _records(part) == _records(full)
    assert _tb(part) == _tb(full)  # each env step once per tag, the same values
    a, _ = load_checkpoint(list_checkpoints(full / "checkpoints")[-1])
    b, _ = load_checkpoint(list_checkpoints(part / "checkpoints")[-1])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
