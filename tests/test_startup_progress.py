"""Issue 17, item 1: the first seconds of a run say what is happening. The env's loading is announced before
it loads, and the progress bar is drawn before the first iteration ends, saying what the long first calls
do (initialising, compiling the iteration) with their elapsed seconds, redrawn by a background thread that
stops on every way out. Off with --no-progress and on every process but the main one."""

import threading
import time
from types import SimpleNamespace

import pytest

from reppo_fast.progress import Progress
from reppo_fast.train import main

TINY = ["--env", "ToyPointMass", "--preset", "cpu", "--num-envs", "8", "--num-steps", "8",
        "--num-epochs", "1", "--num-minibatches", "2", "--actor-hidden", "16", "--critic-hidden", "16",
        "--num-bins", "21", "--num-eval-envs", "2", "--eval-interval", "100", "--total-steps", str(2 * 64)]


def _tickers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "progress-ticker"]


def _progress(on: bool = True) -> Progress:
    cfg = SimpleNamespace(steps_per_iteration=64, num_iterations=4, progress=on, env="Toy")
    return Progress(cfg, 0, None)


def test_waiting_shows_the_elapsed_seconds_then_stops(capsys):
    progress = _progress()
    with progress.waiting("compiling"):
        assert len(_tickers()) == 1
        deadline = time.monotonic() + 60  # a loaded machine may wake the ticker late
        while progress.bar.desc != "Toy: compiling 2 s" and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not _tickers() and progress.bar.desc == "Toy"
    progress.close()
    err = capsys.readouterr().err
    assert "Toy: compiling 0 s" in err and "Toy: compiling 2 s" in err


def test_the_ticker_stops_when_the_call_raises():
    progress = _progress()
    with pytest.raises(KeyboardInterrupt):
        with progress.waiting("compiling"):
            raise KeyboardInterrupt
    assert not _tickers()
    progress.close()


def test_close_stops_a_running_ticker():
    """runner.run's `finally` closes the bar: that stops a ticker too, whatever path led there."""
    progress = _progress()
    with progress.waiting("compiling"):
        progress.close()
        assert not _tickers()


def test_no_ticker_when_the_bar_is_off(capsys):
    progress = _progress(on=False)
    with progress.waiting("compiling"):
        assert not _tickers()
    progress.close()
    assert capsys.readouterr().err == ""


def test_a_run_says_what_it_is_doing_before_the_first_iteration_ends(tmp_path, capsys):
    assert main([*TINY, "--run-dir", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    assert out.index("loading ToyPointMass (analytic toy env) ...") < out.index("run dir: ")
    first = err.index("64.0/128")  # the bar after the first iteration
    assert -1 < err.find("ToyPointMass: initialising the networks and envs 0 s") < first
    assert -1 < err.find("ToyPointMass: compiling the iteration (first call) 0 s") < first
    assert not _tickers()


def test_no_progress_draws_nothing(tmp_path, capsys):
    assert main([*TINY, "--no-progress", "--run-dir", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    assert "loading ToyPointMass" in out and "compiling" not in err and "%|" not in err


def test_an_interrupt_during_the_first_iteration_stops_the_ticker(tmp_path, monkeypatch, capsys):
    from reppo_fast.on_jax.trainer import Trainer

    def interrupted(self, state):
        raise KeyboardInterrupt  # while the first call traces the iteration: Ctrl-C while compiling

    monkeypatch.setattr(Trainer, "_iteration", interrupted)
    assert main([*TINY, "--run-dir", str(tmp_path / "run")]) == 130
    assert "compiling the iteration (first call)" in capsys.readouterr().err
    assert not _tickers()
