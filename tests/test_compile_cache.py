"""Issue 17, item 2: compiled code is kept between runs (on by default) in the user's cache directory, so a
restart of the same setting finds its compiles; `--no-compile-cache` writes nothing. Runs go to a fresh
process each (the caches are process-wide), with the cache in a temporary directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reppo_fast import compile_cache
from reppo_fast.config import Config, ConfigError, validate

TINY = ["--env", "ToyPointMass", "--preset", "cpu", "--num-envs", "8", "--num-steps", "8",
        "--num-epochs", "1", "--num-minibatches", "2", "--actor-hidden", "16", "--critic-hidden", "16",
        "--num-bins", "21", "--num-eval-envs", "2", "--eval-interval", "100", "--total-steps", "64",
        "--no-progress"]
# Counts JAX's persistent-cache events around one training run, printed as the last line.
COUNTING_RUN = """
import collections, json, sys
import jax
from reppo_fast.train import main
events = collections.Counter()
jax.monitoring.register_event_listener(lambda event, **kw: events.update([event.rsplit("/", 1)[-1]]))
code = main(sys.argv[1:])
print(json.dumps({"code": code, **events}))
"""


def _train(tmp_path: Path, name: str, *flags: str) -> dict:
    out = subprocess.run([sys.executable, "-c", COUNTING_RUN, *TINY, "--run-dir", str(tmp_path / name),
                          *flags], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    assert counts["code"] == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return counts


def _entries(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


@pytest.fixture
def user_cache(tmp_path, monkeypatch) -> Path:
    """XDG_CACHE_HOME in tmp_path, and no JAX cache directory set by the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    return tmp_path / "xdg"


def test_a_second_run_finds_the_first_runs_compiles(tmp_path, user_cache):
    first = _train(tmp_path, "a")  # the default: on, in the user's cache directory
    written = _entries(user_cache / "reppo_fast" / "jax")
    # The jitted iteration and the many small compiles of initialisation are all kept.
    assert len(written) == first["cache_misses"] > 10, first
    second = _train(tmp_path, "b", "--compile-cache-dir", str(user_cache / "reppo_fast"))
    # Every compile of the same setting is found: nothing is compiled or written again.
    assert second.get("cache_misses", 0) == 0 and second["cache_hits"] >= len(written), second
    assert _entries(user_cache / "reppo_fast" / "jax") == written


def test_no_compile_cache_writes_nothing(tmp_path, user_cache):
    counts = _train(tmp_path, "off", "--no-compile-cache", "--compile-cache-dir", str(tmp_path / "asked"))
    assert not user_cache.exists() and not (tmp_path / "asked").exists()
    assert counts.get("cache_hits", 0) == counts.get("cache_misses", 0) == 0, counts


def test_default_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.default_dir() == tmp_path / "reppo_fast"
    for unusable in ("", "relative/dir"):  # the XDG spec ignores a relative path
        monkeypatch.setenv("XDG_CACHE_HOME", unusable)
        assert compile_cache.default_dir() == Path.home() / ".cache" / "reppo_fast"


@pytest.fixture
def inductor_env(monkeypatch):
    """The inductor variables restored after the test (configure sets them in os.environ)."""
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TORCHINDUCTOR_FX_GRAPH_CACHE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_inductor_uses_the_cache_dir_unless_the_user_chose_one(tmp_path, inductor_env):
    inductor_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.configure(True, None, jax=False, torch=True) == tmp_path / "xdg" / "reppo_fast"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "xdg" / "reppo_fast" / "inductor")
    assert os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] == "1"
    inductor_env.setenv("TORCHINDUCTOR_CACHE_DIR", "/theirs")  # CI's cold cache, say
    compile_cache.configure(True, None, jax=False, torch=True)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/theirs"
    compile_cache.configure(True, str(tmp_path / "asked"), jax=False, torch=True)  # the flag names one
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "asked" / "inductor")


def test_off_leaves_inductor_alone(inductor_env):
    assert compile_cache.configure(False, None, jax=False, torch=True) is None
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ


def test_an_empty_cache_dir_is_refused():
    with pytest.raises(ConfigError, match=r"^compile_cache_dir must be a non-empty path \(or None: "):
        validate(Config().replace(compile_cache_dir=""))
    validate(Config().replace(compile_cache_dir="/tmp/x", compile_cache=False))
