"""Issue 17, item 1: `--preset auto` (the default) asks the machine. Without a GPU it takes the suite's CPU
preset for every algorithm that has one and says so in one line; on a GPU it keeps the paper's setting. The
GPU is the run's framework's: JAX's default backend for the JAX path, torch's CUDA for the torch path (no
JAX backend is started for it). A resumed run keeps its saved preset."""

import pytest

from reppo_fast import train
from reppo_fast.config import PRESETS, Config, preset_config
from reppo_fast.train import parse_args

NO_GPU_LINE = "no GPU found: using the cpu preset; --preset dmc for the paper's setting"


def _refuse(name):
    def probe():
        raise AssertionError(f"{name} probed")
    return probe


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(train, "_jax_accelerator", lambda: False)
    monkeypatch.setattr(train, "_cuda_available", lambda: False)


@pytest.mark.parametrize("algo", ["reppo", "ppo", "rpo"])
@pytest.mark.parametrize("env", ["CartpoleBalance", "ToyPointMass"])
def test_without_a_gpu_auto_is_the_cpu_preset_and_says_so(algo, env, no_gpu, capsys):
    cfg, _ = parse_args(["--env", env, "--algo", algo])
    assert cfg.preset == "cpu"
    assert cfg.num_envs == PRESETS["cpu", algo]["num_envs"]
    assert NO_GPU_LINE in capsys.readouterr().out.splitlines()


def test_on_a_gpu_auto_keeps_the_papers_setting(monkeypatch, capsys):
    monkeypatch.setattr(train, "_jax_accelerator", lambda: True)
    cfg, _ = parse_args(["--env", "CartpoleBalance"])
    assert cfg == preset_config("dmc", "dmc", env="CartpoleBalance")
    out = capsys.readouterr().out
    assert "preset: auto -> dmc" in out and "no GPU" not in out


def test_the_torch_path_asks_torch_and_starts_no_jax_backend(monkeypatch, capsys):
    monkeypatch.setattr(train, "_jax_accelerator", _refuse("JAX"))
    monkeypatch.setattr(train, "_cuda_available", lambda: False)
    assert parse_args(["--env", "CartpoleBalance", "--framework", "torch"])[0].preset == "cpu"
    monkeypatch.setattr(train, "_cuda_available", lambda: True)
    assert parse_args(["--env", "CartpoleBalance", "--framework=torch"])[0].preset == "dmc"


def test_maniskill_says_so_too(no_gpu, capsys):
    assert parse_args(["--env", "PickCube-v1"])[0].preset == "maniskill_cpu"
    assert ("no GPU found: using the maniskill_cpu preset; --preset maniskill for the paper's setting"
            in capsys.readouterr().out)


def test_an_explicit_preset_probes_nothing(monkeypatch, capsys):
    monkeypatch.setattr(train, "_jax_accelerator", _refuse("JAX"))
    monkeypatch.setattr(train, "_cuda_available", _refuse("torch"))
    assert parse_args(["--env", "CartpoleBalance", "--preset", "dmc"])[0].num_envs == Config().num_envs
    assert "no GPU" not in capsys.readouterr().out


def test_a_multi_host_run_starts_no_backend_before_joining(monkeypatch):
    """jax.distributed.initialize must come before JAX starts a backend: a multi-host JAX run keeps the
    paper's setting without probing."""
    monkeypatch.setattr(train, "_jax_accelerator", _refuse("JAX"))
    assert parse_args(["--env", "CartpoleBalance", "--multi-host"])[0].preset == "dmc"


def test_the_probe_on_this_machine_finds_no_gpu():
    """The real probe (no GPU in CI): JAX's default backend here is the CPU."""
    import jax

    assert train._jax_accelerator() == (jax.default_backend() != "cpu")


def test_a_resumed_run_keeps_its_saved_preset(tmp_path, no_gpu, monkeypatch):
    monkeypatch.setattr(train, "_jax_accelerator", _refuse("JAX"))
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "ckpt_00000001.npz").write_bytes(b"")
    saved = preset_config("dmc", "dmc", env="CartpoleBalance", run_dir=str(run_dir))
    (run_dir / "config.json").write_text(saved.to_json())
    cfg, resume = parse_args(["--resume", str(run_dir), "--total-steps", "1000"])
    assert resume and (cfg.preset, cfg.num_envs) == ("dmc", saved.num_envs)
