"""NVTX ranges: nothing is called when profiling is off; with --profile every phase is a balanced range."""


import nvtx
import pytest

from reppo_fast import profiling
from reppo_fast.config import Config
from reppo_fast.runner import run

TINY = dict(env="ToyPointMass", num_envs=8, num_steps=8, num_epochs=1, num_minibatches=2, actor_hidden=16,
            actor_hidden_blocks=2, critic_hidden=16, num_bins=21, v_min=0.0, v_max=100.0, num_eval_envs=4,
            eval_interval=2, checkpoint_interval=10, progress=False, total_steps=3 * 64)


@pytest.fixture
def recorded(monkeypatch):
    """Every NVTX push/pop, in order, as ("push", name) / ("pop", None)."""
    calls = []
    monkeypatch.setattr(nvtx, "push_range", lambda name: calls.append(("push", name)))
    monkeypatch.setattr(nvtx, "pop_range", lambda: calls.append(("pop", None)))
    return calls


def _pushed(calls):
    return {name for kind, name in calls if kind == "push"}


def _assert_balanced(calls):
    """Pops match pushes as a stack: every range closes, innermost first, none left open."""
    depth = 0
    for kind, _ in calls:
        depth += 1 if kind == "push" else -1
        assert depth >= 0
    assert depth == 0


def test_disabled_ranges_call_nothing(recorded):
    ranges = profiling.Ranges(False)
    assert ranges("rollout") is ranges("update")  # one shared null context: no allocation per use
    with ranges("rollout"):
        pass
    assert recorded == []


def test_enabled_ranges_nest(recorded):
    ranges = profiling.Ranges(True)
    with ranges("update"):
        with ranges("update/critic"):
            pass
    assert recorded == [("push", "update"), ("push", "update/critic"), ("pop", None), ("pop", None)]


def test_a_range_closes_when_its_body_raises(recorded):
    ranges = profiling.Ranges(True)
    with pytest.raises(ZeroDivisionError):
        with ranges("rollout"):
            1 / 0
    assert recorded == [("push", "rollout"), ("pop", None)]


def test_profiled_eager_torch_run_emits_every_phase_and_op(recorded, tmp_path):
    cfg = Config().replace(**TINY, framework="torch", compile="off", profile=True,
                           profile_warmup=1, run_dir=str(tmp_path / "run"))
    run(cfg)
    expected = set(profiling.PHASES) | {profiling.CAPTURE, "op/tanh_normal", "op/hl_gauss_ce",
                                        "op/hl_gauss_decode", "op/lambda_returns"}
    assert expected <= _pushed(recorded)
    _assert_balanced(recorded)
    # The capture window opens once, after the warm-up iteration's ranges.
    pushes = [name for kind, name in recorded if kind == "push"]
    assert pushes.count(profiling.CAPTURE) == 1 and pushes.index(profiling.CAPTURE) > pushes.index("update")


def test_profiled_compiled_torch_run_keeps_ranges_out_of_compiled_code(recorded, tmp_path):
    """An NVTX call inside torch.compile'd code would break the graph: only host-side ranges remain (the
    returns are computed inside the update phase, so their range goes too)."""
    cfg = Config().replace(**TINY, framework="torch", compile="on", profile=True,
                           run_dir=str(tmp_path / "run"))
    run(cfg)
    pushed = _pushed(recorded)
    assert {"rollout", "update", "eval"} <= pushed
    assert not pushed & {"returns", "update/critic", "update/actor", "op/tanh_normal", "op/hl_gauss_ce"}
    _assert_balanced(recorded)


def test_unprofiled_run_emits_no_range(recorded, tmp_path):
    cfg = Config().replace(**TINY, framework="torch", run_dir=str(tmp_path / "run"))
    run(cfg)
    assert recorded == []


def test_jax_iteration_names_phases_and_ops_in_its_lowered_program(tmp_path):
    """Inside jit the ranges are named scopes; they must reach the lowered program's op locations, which
    is what XLA turns into NVTX ranges on GPU."""
    import jax

    from reppo_fast.envs import make_env
    from reppo_fast.kernels import bind
    from reppo_fast.on_jax.reppo import ALGORITHM
    from reppo_fast.on_jax.trainer import Trainer

    cfg = Config().replace(**TINY, profile=True, gamma=0.99)
    env = make_env(cfg.env, num_envs=cfg.num_envs)
    trainer = Trainer(cfg, env, env, bind("jax", "reference"), ALGORITHM)
    text = jax.jit(trainer._iteration).lower(trainer.init_state(0)).as_text(debug_info=True)
    for name in ("rollout", "returns", "update/critic", "update/actor", "op/tanh_normal", "op/hl_gauss_ce",
                 "op/lambda_returns"):
        assert name in text, name


def test_profile_run_summarises_every_range_of_a_real_run(tmp_path):
    from reppo_fast import profile_run

    out = tmp_path / "summary.md"
    argv = ["--iterations", "2", "--warmup", "1", "--out", str(out), "--env", "ToyPointMass", "--framework",
            "torch", "--num-envs", "8", "--num-steps", "8", "--num-epochs", "1", "--num-minibatches", "2",
            "--actor-hidden", "16", "--critic-hidden", "16", "--num-bins", "21", "--v-min", "0", "--v-max",
            "100", "--run-dir", str(tmp_path / "unused")]
    assert profile_run.main(argv) == 0
    text = out.read_text()
    for name in ("rollout", "returns", "update", "update/critic", "update/actor", "op/tanh_normal",
                 "op/hl_gauss_ce", "op/lambda_returns"):
        assert f"| `{name}` |" in text, name
    # 1 epoch x 2 minibatches: update/critic runs twice per iteration.
    critic_row = next(line for line in text.splitlines() if line.startswith("| `update/critic` |"))
    assert critic_row.split("|")[3].strip() == "2"
    launches = int(text.rsplit(":", 1)[1])
    assert launches > 10


def test_profile_run_refuses_the_jax_path(capsys):
    from reppo_fast import profile_run

    assert profile_run.main(["--env", "ToyPointMass", "--framework", "jax"]) == 2
    assert "torch path" in capsys.readouterr().err
