"""Command line: `python -m reppo_fast.train --env Humanoid [--algo ppo] [--preset cpu] [--FIELD VALUE ...]`.

`--algo` chooses the algorithm and `--preset` its hyper-parameter preset for the env's suite.
`--resume RUN_DIR` continues a run from its newest checkpoint with its saved config (only the
run-length and logging fields may change). Every Config field is a flag, the groups' too (`--kl-target`,
`--clip-eps`, `--compile`); `--help` lists them by group.
"""

from __future__ import annotations

import argparse
import sys

import tyro

from reppo_fast.config import RENAMED_FIELDS, Config, ConfigError, preset_config, validate

# Fields a resumed run may change: they do not alter what has been computed so far.
RESUMABLE_FIELDS = {"total_steps", "progress", "eval_interval", "checkpoint_interval", "run_dir", "profile",
                    "profile_warmup", "devices", "multi_host", "max_skipped_iterations"}


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


def _cli(default: Config, argv: list[str], description: str) -> Config:
    """tyro over Config, flat: a group's fields are flags without the group's prefix (field names are
    unique across groups), and `--help` shows each group as its own section."""
    return tyro.cli(Config, default=default, args=argv, description=description,
                    config=(tyro.conf.OmitArgPrefixes,))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def parse_args(argv: list[str]) -> tuple[Config, bool]:
    """Config from the command line; True when resuming. Raises ConfigError-like errors on bad input."""
    from reppo_fast.envs.names import describe_names, resolve_env
    from reppo_fast.runner import load_run_config

    for old, new in RENAMED_FIELDS.items():
        flag = "--" + old.replace("_", "-")
        if any(arg == flag or arg.startswith(flag + "=") for arg in argv):
            raise ConfigError(f"{flag} is now --{new.replace('_', '-')} (same meaning: hidden blocks)")
    pre = _preparse(argv)
    desc = f"{__doc__}\nEnvironments:\n{describe_names()}"
    if pre.resume is not None:
        saved = load_run_config(pre.resume)
        cfg = _cli(saved, _strip_resume(argv), desc)
        before, after = saved.flat(), cfg.flat()
        changed = [name for name in after if after[name] != before[name] and name not in RESUMABLE_FIELDS]
        if changed:
            raise ConfigError(f"--resume keeps the run's saved config; cannot change {', '.join(changed)} "
                              f"(only {', '.join(sorted(RESUMABLE_FIELDS))}); start a new run instead")
        validate(cfg)
        return cfg, True
    resolved = resolve_env(pre.env)
    # Only ManiSkill's presets depend on the machine; probing CUDA imports torch, so only then.
    cuda = _cuda_available() if resolved.suite == "maniskill" else None
    base = preset_config(pre.preset, resolved.suite, pre.algo, cuda=cuda, env=resolved.name)
    cfg = _cli(base, argv, desc)
    # --preset names the preset as asked ("auto"); the config records the one resolved ("dmc").
    cfg = cfg.replace(env=resolve_env(cfg.env).name, preset=base.preset)
    if resolved.alias is not None:
        print(f"env: {resolved.alias} -> {resolved.name}")
    if cfg.preset != pre.preset:
        print(f"preset: {pre.preset} -> {cfg.preset}")
    validate(cfg)
    return cfg, False


def main(argv: list[str] | None = None) -> int:
    from reppo_fast.checkpoint import CheckpointDamagedError, CheckpointFormatError, CheckpointWriteError
    from reppo_fast.envs.names import UnknownEnvError, UnsupportedEnvError
    from reppo_fast.kernels import KernelUnavailableError
    from reppo_fast.preemption import Stopped
    from reppo_fast.runner import Diverged, RunDirError, run

    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg, resume = parse_args(argv)
        run(cfg, resume=resume)
    except (ConfigError, UnknownEnvError, UnsupportedEnvError, RunDirError, KernelUnavailableError,
            CheckpointFormatError, CheckpointDamagedError, NotImplementedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (Diverged, CheckpointWriteError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Stopped as stop:  # the runner has said where the checkpoint is and how to resume
        return 128 + stop.signum
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
