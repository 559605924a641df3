"""Command line: `python -m reppo_fast.train --env Humanoid [--preset cpu] [--FIELD VALUE ...]`.

`--resume RUN_DIR` continues a run from its newest checkpoint with its saved config (only the
run-length and logging fields may change). Every Config field is a flag; `--help` lists them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import tyro

from reppo_fast.config import Config, ConfigError, preset_config, validate

# Fields a resumed run may change: they do not alter what has been computed so far.
RESUMABLE_FIELDS = {"total_steps", "progress", "eval_interval", "checkpoint_interval", "run_dir", "profile",
                    "profile_warmup"}


def _preparse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--env", default=Config.env)
    parser.add_argument("--preset", default="auto")
    parser.add_argument("--algo", default=Config.algo)
    known, _ = parser.parse_known_args(argv)
    return known


def _strip_resume(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        elif not arg.startswith("--resume="):
            out.append(arg)
    return out


def parse_args(argv: list[str]) -> tuple[Config, bool]:
    """Config from the command line; True when resuming. Raises ConfigError-like errors on bad input."""
    from reppo_fast.envs.names import describe_names, resolve_env
    from reppo_fast.runner import load_run_config

    pre = _preparse(argv)
    desc = f"{__doc__}\nEnvironments:\n{describe_names()}"
    if pre.resume is not None:
        saved = load_run_config(pre.resume)
        cfg = tyro.cli(Config, default=saved, args=_strip_resume(argv), description=desc)
        changed = [f.name for f in dataclasses.fields(Config)
                   if getattr(cfg, f.name) != getattr(saved, f.name) and f.name not in RESUMABLE_FIELDS]
        if changed:
            raise ConfigError(f"--resume keeps the run's saved config; cannot change {', '.join(changed)} "
                              f"(only {', '.join(sorted(RESUMABLE_FIELDS))}); start a new run instead")
        validate(cfg)
        return cfg, True
    resolved = resolve_env(pre.env)
    base = preset_config(pre.preset, resolved.suite, pre.algo, env=resolved.name)
    cfg = tyro.cli(Config, default=base, args=argv, description=desc)
    # --preset names the preset as asked ("cpu"); the config records the one resolved ("ppo_cpu").
    cfg = dataclasses.replace(cfg, env=resolve_env(cfg.env).name, preset=base.preset)
    if resolved.alias is not None:
        print(f"env: {resolved.alias} -> {resolved.name}")
    if cfg.preset != pre.preset:
        print(f"preset: {pre.preset} -> {cfg.preset}")
    validate(cfg)
    return cfg, False


def main(argv: list[str] | None = None) -> int:
    from reppo_fast.checkpoint import CheckpointFormatError
    from reppo_fast.envs.names import UnknownEnvError, UnsupportedEnvError
    from reppo_fast.kernels import KernelUnavailableError
    from reppo_fast.runner import RunDirError, run

    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg, resume = parse_args(argv)
        run(cfg, resume=resume)
    except (ConfigError, UnknownEnvError, UnsupportedEnvError, RunDirError, KernelUnavailableError,
            CheckpointFormatError, NotImplementedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
