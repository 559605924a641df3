"""What RPO needs of an env's physics (reppo_fast/envs/differentiable.py, ../shared/rpo_spec.md section 5):
a task whose MJX solver runs more than one iteration (a lax.while_loop, which reverse-mode AD rejects) is
refused with the opt-in named, or, opted in, changed to one iteration with a note; tasks that ship one
iteration, and the toy, pass unchanged. Only models are loaded here, nothing is differentiated or compiled.
"""

import pytest

from reppo_fast.envs import make_env
from reppo_fast.envs.differentiable import make_differentiable, solver_iterations
from reppo_fast.envs.names import UnsupportedEnvError
from reppo_fast.train import main

pytest.importorskip("mujoco_playground")


def test_a_multi_iteration_solver_is_refused_unless_opted_in():
    """CheetahRun ships opt.iterations 4: refused naming --rpo-single-solver-iteration; opted in, both the
    MuJoCo model and the device model the env steps with run 1 iteration, and the note says so."""
    env = make_env("CheetahRun", num_envs=1)
    assert solver_iterations(env.raw) == 4
    with pytest.raises(UnsupportedEnvError, match="--rpo-single-solver-iteration") as err:
        make_differentiable(env.raw, env.name, single_solver_iteration=False)
    assert "opt.iterations=4" in str(err.value) and "\n" not in str(err.value)
    assert solver_iterations(env.raw) == 4  # a refusal changes nothing

    note = make_differentiable(env.raw, env.name, single_solver_iteration=True)
    assert env.raw.mj_model.opt.iterations == 1 and env.raw.mjx_model.opt.iterations == 1
    assert "CheetahRun" in note and "iterations 4 -> 1" in note and "\n" not in note


@pytest.mark.parametrize("name", ["CartpoleSwingup", "ToyPointMass"])
def test_envs_ad_can_run_through_pass_unchanged(name):
    """CartpoleSwingup ships 1 iteration, the toy has no MJX solver: no note, no change, opted in or not."""
    env = make_env(name, num_envs=1)
    before = solver_iterations(env.raw)
    assert before == (1 if name == "CartpoleSwingup" else None)
    for opt_in in (False, True):
        assert make_differentiable(env.raw, env.name, single_solver_iteration=opt_in) is None
    assert solver_iterations(env.raw) == before


def test_the_command_line_refuses_cheetah_before_compiling(tmp_path, capsys, monkeypatch):
    """`--env CheetahRun --algo rpo`: exit 2 with a one-line error naming the opt-in, before a trainer is
    built (so nothing compiles) and before the run directory is written."""
    from reppo_fast.on_jax import trainer

    def no_trainer(*args, **kwargs):
        raise AssertionError("the trainer was built: the refusal came too late")

    monkeypatch.setattr(trainer, "Trainer", no_trainer)
    run_dir = tmp_path / "run"
    assert main(["--env", "CheetahRun", "--algo", "rpo", "--preset", "cpu", "--num-envs", "2",
                 "--num-eval-envs", "2", "--run-dir", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: CheetahRun") and "--rpo-single-solver-iteration" in err
    assert not run_dir.exists()
