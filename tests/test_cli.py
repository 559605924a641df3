"""The `reppo-fast` command (reppo_fast.cli): its help, the forwarding of each subcommand's arguments to its
module's main, the errors, and the installed script itself."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from reppo_fast import cli


def test_help_lists_every_subcommand_in_one_line_each(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("train", "plot", "video", "profile"):
        [line] = [line for line in out.splitlines() if line.strip().startswith(name + " ")]
        assert "python -m reppo_fast." in line


def test_no_subcommand_prints_the_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("usage: reppo-fast {train,plot,video,profile}")


def test_unknown_subcommand_is_a_one_line_error_listing_them(capsys):
    assert cli.main(["trian", "--env", "Humanoid"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown subcommand 'trian'")
    assert "train, plot, video, profile" in err


@pytest.mark.parametrize("command, module", [(name, module) for name, (module, _) in cli.COMMANDS.items()])
def test_subcommands_forward_the_rest_of_argv(command, module, monkeypatch):
    try:
        target = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        pytest.skip(f"{module} is not written yet")
    calls = []
    monkeypatch.setattr(target, "main", lambda argv: calls.append(argv) or 7)
    assert cli.main([command, "--env", "Toy", "--help"]) == 7
    assert calls == [["--env", "Toy", "--help"]]


def test_help_of_the_dispatcher_imports_neither_jax_nor_torch():
    code = ("import sys; from reppo_fast import cli; cli.main(['--help']); "
            "print(sorted(m for m in ('jax', 'torch', 'tyro', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"


def test_installed_script_shows_train_help():
    script = Path(sys.executable).parent / "reppo-fast"
    if not script.exists():
        pytest.skip("reppo-fast is not installed in this environment: pip install -e .")
    out = subprocess.run([str(script), "train", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--env" in out.stdout and "--wandb-project" in out.stdout
