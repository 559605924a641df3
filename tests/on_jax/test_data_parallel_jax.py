"""Runs two_devices_checks.py in a subprocess that sees two JAX CPU devices
(XLA_FLAGS=--xla_force_host_platform_device_count=2): a process's device count is fixed when JAX starts,
and this one has a single device."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECKS = Path(__file__).with_name("two_devices_checks.py")


def _pytest_on_two_devices(marker: str, tmp_path) -> None:
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} "
                                      "--xla_force_host_platform_device_count=2".strip()}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker,
                           "--basetemp", str(tmp_path / "base"), str(CHECKS)],
                          env=env, capture_output=True, text=True, timeout=1800)
    # Every check must have run: a skip here would mean the subprocess saw one device.
    assert proc.returncode == 0 and " skipped" not in proc.stdout, proc.stdout[-6000:] + proc.stderr[-3000:]


def test_data_parallel_on_two_jax_devices(tmp_path):
    _pytest_on_two_devices("not slow", tmp_path)


@pytest.mark.slow
def test_learning_on_two_jax_devices(tmp_path):
    _pytest_on_two_devices("slow", tmp_path)


def test_more_devices_than_the_host_has_is_refused(tmp_path, capsys):
    from reppo_fast.train import main

    assert main(["--env", "ToyPointMass", "--preset", "cpu", "--devices", "2",
                 "--run-dir", str(tmp_path / "a"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "devices=2, but this host has 1 cpu device(s); pass --devices 1 or fewer" in err
    assert len(err.splitlines()) == 1
