"""Compiled code kept between runs (`--compile-cache`, on by default), so that a restart of the same setting
skips most of its compiling: JAX's persistent compilation cache and torch inductor's caches, under
`--compile-cache-dir` (default: the user's cache directory, $XDG_CACHE_HOME/reppo_fast or
~/.cache/reppo_fast).

`configure` must run before the run's first compile (runner._build calls it first): JAX reads the cache
directory when it first stores or looks up an executable, and inductor reads TORCHINDUCTOR_CACHE_DIR when
it first compiles. Both settings are process-wide. A cache directory the user gave a library
(TORCHINDUCTOR_CACHE_DIR, JAX_COMPILATION_CACHE_DIR) is kept unless --compile-cache-dir names one: CI
points them at an empty directory on purpose, to start cold as a user's new machine does.
"""

from __future__ import annotations

import os
from pathlib import Path

# Every compile is worth keeping on a CPU: starting a JAX run compiles hundreds of small executables (the
# eager ops of network initialisation and the first env reset, each well under JAX's default threshold of
# 1 s) that together take longer than the jitted iteration, and each is read back in milliseconds.
MIN_COMPILE_TIME_S = 0.0


def default_dir() -> Path:
    """$XDG_CACHE_HOME/reppo_fast, or ~/.cache/reppo_fast where XDG_CACHE_HOME is unset or not absolute
    (the XDG spec ignores a relative one)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "reppo_fast"


def configure(enabled: bool, directory: str | None, *, jax: bool, torch: bool) -> Path | None:
    """Set the caches of the frameworks a run uses (`jax`, `torch`: whether it uses each; a torch run on a
    DM Control task uses both, since the physics is JAX's). Returns the cache directory, None when off.

    Off: JAX's persistent cache is disabled (even one set through JAX_COMPILATION_CACHE_DIR); inductor
    keeps its own defaults, since it compiles through files in its cache directory either way."""
    root = Path(directory).expanduser() if directory else default_dir()
    if jax:
        _configure_jax(enabled, str(root / "jax"), explicit=directory is not None)
    if torch and enabled:
        _configure_inductor(str(root / "inductor"), explicit=directory is not None)
    return root if enabled else None


def _configure_jax(enabled: bool, path: str, *, explicit: bool) -> None:
    import jax

    jax.config.update("jax_enable_compilation_cache", enabled)
    if not enabled:
        return
    if explicit or not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    # -1: no minimum entry size, and no filesystem-specific override of it.
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def _configure_inductor(path: str, *, explicit: bool) -> None:
    if explicit:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = path
    else:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", path)
    # On by default in the torch versions we support; set for older ones, unless the user chose.
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
