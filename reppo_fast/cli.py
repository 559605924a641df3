"""The `reppo-fast` command: `reppo-fast train|plot|video|profile ARGS...` runs what
`python -m reppo_fast.<module> ARGS...` runs, and `reppo-fast SUBCOMMAND --help` is that module's help.

A subcommand's module is imported only when it runs, so `reppo-fast --help` loads neither jax nor torch.
"""

from __future__ import annotations

import importlib
import sys

# Subcommand -> (the module whose main(argv) -> int it runs, its line in `reppo-fast --help`).
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("reppo_fast.train", "train a run, or continue one with --resume (python -m reppo_fast.train)"),
    "plot": ("reppo_fast.plot", "learning curves of run directories to a PNG (python -m reppo_fast.plot)"),
    "video": ("reppo_fast.video", "videos of a run's policy (python -m reppo_fast.video)"),
    "profile": ("reppo_fast.profile_run", "profile training iterations of the torch path "
                                          "(python -m reppo_fast.profile_run)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    return "\n".join(["usage: reppo-fast {" + ",".join(COMMANDS) + "} [ARGS ...]", "",
                      "subcommands (`reppo-fast SUBCOMMAND --help` for each one's options):", *lines])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command in ("-h", "--help"):
        print(usage())
        return 0
    if command not in COMMANDS:
        print(f"error: unknown subcommand {command!r}; choose one of {', '.join(COMMANDS)} "
              "(reppo-fast --help)", file=sys.stderr)
        return 2
    name = COMMANDS[command][0]
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name:  # a dependency of the module is missing: its own message says which
            raise
        print(f"error: reppo-fast {command}: {name} is not in this install of reppo_fast", file=sys.stderr)
        return 2
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
