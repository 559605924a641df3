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

from reppo_fast import process_env
from reppo_fast.config import (
    RENAMED_FIELDS,
    REPLACED_BY_PRECISION,
    SUITE_PRESET,
    Config,
    ConfigError,
    preset_config,
    validate,
)

# Fields a resumed run may change: they do not alter what has been computed so far.
RESUMABLE_FIELDS = {"total_steps", "progress", "eval_interval", "checkpoint_interval", "run_dir", "profile",
                    "profile_warmup", "devices", "multi_host", "max_skipped_iterations", "wandb_project",
                    "wandb_entity", "wandb_mode", "video_interval", "compile_cache", "compile_cache_dir"}


def _preparse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--env", default=Config.env)
    parser.add_argument("--preset", default="auto")
    parser.add_argument("--algo", default=Config.algo)
    parser.add_argument("--framework", default=None)
    parser.add_argument("--multi-host", action=argparse.BooleanOptionalAction, default=Config.multi_host)
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


def _jax_accelerator() -> bool:
    """JAX's default backend is not the CPU (a GPU, or a TPU). This starts JAX's backends, which a JAX run
    does next anyway."""
    import jax

    return jax.default_backend() != "cpu"


def _gpu(framework: str, multi_host: bool) -> bool:
    """Whether the run's framework sees a GPU, for `--preset auto`: torch's CUDA for the torch path (no JAX
    backend is started for it), JAX's default backend for the JAX path. A multi-host JAX run must not start
    a backend before jax.distributed.initialize, and runs over several hosts are GPU runs: True."""
    if framework == "torch":
        return _cuda_available()
    return multi_host or _jax_accelerator()


def parse_args(argv: list[str]) -> tuple[Config, bool]:
    """Config from the command line; True when resuming. Raises ConfigError-like errors on bad input."""
    from reppo_fast.envs.names import describe_names, resolve_env
    from reppo_fast.runner import load_run_config

    for old, new in RENAMED_FIELDS.items():
        flag = "--" + old.replace("_", "-")
        if any(arg == flag or arg.startswith(flag + "=") for arg in argv):
            raise ConfigError(f"{flag} is now --{new.replace('_', '-')} (same meaning: hidden blocks)")
    for old, meaning in REPLACED_BY_PRECISION.items():
        flag = "--" + old.replace("_", "-")
        if any(arg == flag or arg.startswith(flag + "=") for arg in argv):
            raise ConfigError(f"{flag} is now --precision ({meaning})")
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
    # Only `auto` depends on the machine: probe it (which imports torch or starts JAX) only then.
    framework = pre.framework or ("torch" if resolved.suite == "maniskill" else Config.framework)
    gpu = _gpu(framework, pre.multi_host) if pre.preset == "auto" else None
    base = preset_config(pre.preset, resolved.suite, pre.algo, gpu=gpu, env=resolved.name)
    cfg = _cli(base, argv, desc)
    # --preset names the preset as asked ("auto"); the config records the one resolved ("dmc").
    cfg = cfg.replace(env=resolve_env(cfg.env).name, preset=base.preset)
    if resolved.alias is not None:
        print(f"env: {resolved.alias} -> {resolved.name}")
    if gpu is False and cfg.preset != SUITE_PRESET[resolved.suite]:
        print(f"no GPU found: using the {cfg.preset} preset; --preset {SUITE_PRESET[resolved.suite]} for the "
              "paper's setting")
    elif cfg.preset != pre.preset:
        print(f"preset: {pre.preset} -> {cfg.preset}")
    validate(cfg)
    return cfg, False


def main(argv: list[str] | None = None) -> int:
    from reppo_fast.checkpoint import CheckpointDamagedError, CheckpointFormatError, CheckpointWriteError
    from reppo_fast.envs.names import UnknownEnvError, UnsupportedEnvError
    from reppo_fast.kernels import KernelUnavailableError
    from reppo_fast.preemption import Stopped
    from reppo_fast.runner import Diverged, RunDirError, run
    from reppo_fast.video import VideoError

    argv = sys.argv[1:] if argv is None else argv
    # Before anything imports mujoco (PPO's presets read playground's): --video-interval renders headless.
    process_env.configure_gl()
    try:
        cfg, resume = parse_args(argv)
        run(cfg, resume=resume)
    except (ConfigError, UnknownEnvError, UnsupportedEnvError, RunDirError, KernelUnavailableError,
            CheckpointFormatError, CheckpointDamagedError, NotImplementedError, VideoError) as err:
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
