"""Weights & Biases tracking (reppo_fast.tracking) against a fake wandb module that records its calls: what
wandb.init is given (config, id, resume), what is logged at which step through MetricsLogger, how the run is
finished; and that nothing imports wandb without a project. A real offline run is
tests/on_jax/test_wandb_offline.py."""

import json
import signal
import sys
import types

import pytest

from reppo_fast import tracking
from reppo_fast.algorithm import EvalResult
from reppo_fast.config import Config, ConfigError
from reppo_fast.metrics import MetricsLogger
from reppo_fast.preemption import Stopped
from reppo_fast.train import main


class FakeRun:
    def __init__(self, step=0):
        self.step = step
        self.logged = []
        self.finished = []
        self.preempting = False

    def log(self, data, step):
        self.logged.append((step, data))

    def mark_preempting(self):
        self.preempting = True

    def finish(self, exit_code):
        self.finished.append(exit_code)


class FakeVideo:
    def __init__(self, path, caption=None):
        self.path, self.caption = path, caption


@pytest.fixture
def fake_wandb(monkeypatch):
    """A wandb module that records its calls; `fake.logged_in` is what login(prompt=False) answers."""
    fake = types.ModuleType("wandb")
    fake.inits, fake.logins, fake.logged_in, fake.run = [], [], True, FakeRun()

    def init(**kwargs):
        fake.inits.append(kwargs)
        if isinstance(fake.run, Exception):
            raise fake.run
        return fake.run

    def login(prompt):
        fake.logins.append(prompt)
        return fake.logged_in

    fake.init, fake.login, fake.Video = init, login, FakeVideo
    fake.errors = types.SimpleNamespace(Error=type("Error", (Exception,), {}))
    fake.Settings = lambda **kwargs: kwargs
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    return fake


@pytest.fixture
def no_wandb(monkeypatch):
    """`import wandb` fails, as where the package is not installed."""
    monkeypatch.setitem(sys.modules, "wandb", None)


def _cfg(**fields):
    return Config().replace(env="ToyPointMass", wandb_project="proj", **fields)


def test_init_gets_the_nested_config_the_run_id_and_resume(fake_wandb, tmp_path):
    cfg = _cfg(wandb_entity="team", wandb_mode="offline")
    tracking.start(cfg, tmp_path, resume=False)
    init = fake_wandb.inits[-1]
    assert init["config"] == json.loads(cfg.to_json()) and "reppo" in init["config"]
    assert (init["project"], init["entity"], init["mode"]) == ("proj", "team", "offline")
    run_id = (tmp_path / tracking.ID_FILE).read_text().strip()
    assert (init["id"], init["resume"], init["name"], init["dir"]) == (run_id, "allow", tmp_path.name,
                                                                       str(tmp_path))
    assert init["settings"] == {"console": "off"}
    # A resumed run continues the same W&B run; a fresh start in the same directory takes a new one.
    tracking.start(cfg, tmp_path, resume=True)
    assert fake_wandb.inits[-1]["id"] == run_id
    tracking.start(cfg, tmp_path, resume=False)
    new_id = (tmp_path / tracking.ID_FILE).read_text().strip()
    assert fake_wandb.inits[-1]["id"] == new_id != run_id


def test_wandb_dir_from_the_environment_wins(fake_wandb, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    tracking.start(_cfg(), tmp_path, resume=False)
    assert fake_wandb.inits[-1]["dir"] is None  # wandb reads WANDB_DIR itself


def test_metrics_logger_mirrors_its_records_at_env_steps(fake_wandb, tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=False, tracker=tracking.start(_cfg(), tmp_path, False))
    logger.log(1, 64, {"loss": 0.5, "time/iteration_s": 2.0})
    logger.log(2, 128, {"loss": 0.25, "time/iteration_s": 1.0})
    logger.log_eval(2, 128, EvalResult(10.0, 0.5), wall_time=3.0)
    logger.log_video(tmp_path / "videos" / "eval_128.mp4", 128)
    logger.close()
    run = fake_wandb.run
    video = run.logged[-1][1]["eval/video"]
    assert run.logged[:-1] == [
        (64, {"loss": 0.5, "time/iteration_s": 2.0, "iteration": 1}),
        (128, {"loss": 0.25, "time/iteration_s": 1.0, "iteration": 2}),
        (128, {"eval/return": 10.0, "eval/return_stderr": 0.5, "iteration": 2}),
    ]
    assert run.logged[-1][0] == 128 and video.path == str(tmp_path / "videos" / "eval_128.mp4")
    assert "128" in video.caption
    assert run.finished == [0] and not run.preempting
    # metrics.jsonl holds the same scalars
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in m.items() if k != "env_steps"} for m in lines] == [d for _, d in run.logged[:2]]


def test_a_resumed_run_skips_the_steps_wandb_holds_already(fake_wandb, tmp_path):
    fake_wandb.run = FakeRun(step=200)  # the killed run logged up to step 199
    tracker = tracking.start(_cfg(), tmp_path, resume=True)
    for i in range(1, 5):
        tracker.log(i, 64 * i, {"loss": 1.0})
    assert [step for step, _ in fake_wandb.run.logged] == [256]


@pytest.mark.parametrize("error, code, preempting", [
    (None, 0, False),
    (Stopped(signal.SIGTERM, "stopped"), 128 + signal.SIGTERM, True),
    (KeyboardInterrupt(), 130, False),
    (RuntimeError("boom"), 1, False),
])
def test_close_finishes_the_run_with_the_exit_status(fake_wandb, tmp_path, error, code, preempting):
    logger = MetricsLogger(tmp_path, tensorboard=False, tracker=tracking.start(_cfg(), tmp_path, False))
    logger.close(error=error)
    logger.close()  # a second close does not finish twice
    assert fake_wandb.run.finished == [code] and fake_wandb.run.preempting == preempting


def test_online_mode_checks_credentials_without_a_prompt(fake_wandb):
    tracking.check(_cfg())
    assert fake_wandb.logins == [False]
    fake_wandb.logged_in = False
    with pytest.raises(ConfigError, match="wandb login.*WANDB_API_KEY.*--wandb-mode offline"):
        tracking.check(_cfg())
    tracking.check(_cfg(wandb_mode="offline"))  # no credentials needed, none asked for
    assert fake_wandb.logins == [False, False]


def test_a_failed_init_is_one_line(fake_wandb, tmp_path):
    fake_wandb.run = fake_wandb.errors.Error("network unreachable\n(details)")
    with pytest.raises(ConfigError, match=r"^wandb.init failed: network unreachable") as err:
        tracking.start(_cfg(), tmp_path, resume=False)
    assert "--wandb-mode offline" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("fields", [dict(wandb_project=None), dict(wandb_mode="disabled")])
def test_no_tracking_imports_nothing(no_wandb, tmp_path, fields):
    cfg = Config().replace(wandb_project="proj").replace(**fields)
    tracking.check(cfg)
    assert tracking.start(cfg, tmp_path, resume=False) is None
    assert not (tmp_path / tracking.ID_FILE).exists()


def test_missing_wandb_is_a_one_line_error_before_anything_compiles(no_wandb, tmp_path, capsys):
    argv = ["--env", "ToyPointMass", "--preset", "cpu", "--run-dir", str(tmp_path / "r"), "--no-progress",
            "--wandb-project", "test", "--wandb-mode", "offline"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == "error: --wandb-project needs the wandb package: pip install 'reppo_fast[wandb]'\n"
    assert not (tmp_path / "r").exists()


def test_empty_names_are_refused(capsys):
    for flag in ("--wandb-project=", "--wandb-entity= "):
        assert main(["--env", "ToyPointMass", "--preset", "cpu", flag]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {flag[2:].split('=')[0].replace('-', '_')} must be a non-empty name")
