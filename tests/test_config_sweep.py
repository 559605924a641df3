"""Every config field refuses impossible values (NaN, infinities where they cannot work, values just outside
its range) in one line naming the field and the allowed values, in `validate` and on the command line
without a traceback; values just inside the range pass. The expected ranges are written here from the
fields' meanings, independently of the rule table they check (reppo_fast.config.bounds.RULES)."""

import json
import math
import subprocess
import sys
import typing

import pytest

from reppo_fast import runner
from reppo_fast.config import GROUPS, PRESETS, Config, ConfigError, flat_names, preset_config, validate
from reppo_fast.config.bounds import RULES, Free, Range
from reppo_fast.config.validation import _choices
from reppo_fast.envs.names import SUITES
from reppo_fast.train import main

INF = math.inf


def ints(low, high=INF, optional=False):
    """Integers from low to high, both included."""
    return ("int", low, high, "[]" if high != INF else "[)", optional)


def reals(low=-INF, high=INF, ends="()", optional=False):
    """Reals from low to high; `ends` is "(" or "[" for the low end and ")" or "]" for the high one, and a
    "]" on an infinite high end admits inf itself."""
    return ("real", low, high, ends, optional)


POSITIVE_INT, POSITIVE, NON_NEGATIVE = ints(1), reals(0.0), reals(0.0, ends="[)")
EXPECTED = {
    "seed": ints(0, 2**32 - 1),
    "total_steps": POSITIVE_INT,
    "eval_interval": POSITIVE_INT,
    "num_eval_envs": POSITIVE_INT,
    "checkpoint_interval": POSITIVE_INT,
    "iterations_per_dispatch": POSITIVE_INT,
    "video_interval": ints(1, optional=True),
    "profile_warmup": ints(0),
    "action_repeat": POSITIVE_INT,
    "episode_length": ints(1, optional=True),
    "obs_limit": reals(0.0, ends="(]"),
    "max_skipped_iterations": POSITIVE_INT,
    "devices": ints(1, optional=True),
    "num_envs": POSITIVE_INT,
    "num_steps": POSITIVE_INT,
    "num_epochs": POSITIVE_INT,
    "num_minibatches": POSITIVE_INT,
    "lr": POSITIVE,
    "max_grad_norm": reals(0.0, optional=True),
    "gamma": reals(0.0, 1.0, optional=True),
    "lmbda": reals(0.0, 1.0, "[]"),
    "actor_hidden": POSITIVE_INT,
    "actor_hidden_blocks": POSITIVE_INT,
    "critic_hidden": POSITIVE_INT,
    "critic_hidden_blocks": POSITIVE_INT,
    "action_clip": reals(0.0, 1.0, "(]"),
    "num_bins": ints(2),
    "v_min": reals(),
    "v_max": reals(),
    "sigma_ratio": POSITIVE,
    "aux_coef": NON_NEGATIVE,
    "kl_target": POSITIVE,
    "kl_samples": POSITIVE_INT,
    "ent_target_mult": NON_NEGATIVE,
    "alpha_init": POSITIVE,
    "beta_init": POSITIVE,
    "log_std_min": reals(optional=True),
    "log_std_max": reals(optional=True),
    "clip_eps": reals(0.0, ends="(]"),
    "entropy_coef": NON_NEGATIVE,
    "value_coef": POSITIVE,
    "reward_scaling": POSITIVE,
    "rpo_epochs": POSITIVE_INT,
    "rpo_minibatches": POSITIVE_INT,
    "rpo_clip_low": reals(0.0, 1.0, "(]"),
    "rpo_clip_high": reals(0.0, ends="(]"),
    "rpo_surr_coef": NON_NEGATIVE,
    "rpo_kl_coef": NON_NEGATIVE,
    "rpo_ent_coef": NON_NEGATIVE,
    "rpo_log_std_init": reals(),
    "rpo_grad_clip": reals(0.0, optional=True),
    "rpo_critic_lr": POSITIVE,
    "rpo_adam_b1": reals(0.0, 1.0, "[)"),
    "rpo_adam_b2": reals(0.0, 1.0, "[)"),
    "rpo_weight_decay": NON_NEGATIVE,
    "rpo_num_critics": POSITIVE_INT,
    "rpo_target_alpha": reals(0.0, 1.0, "[)"),
}
# A sample of messages and the allowed values they must name (the fix).
SAYS = {"lr": "> 0 and finite", "seed": "[0, 4294967295]", "gamma": "(0, 1) (or None:", "lmbda": "[0, 1]",
        "num_envs": "positive integer", "obs_limit": "> 0 (or inf:",
        "max_grad_norm": "(or None: no clipping)", "profile_warmup": "non-negative integer",
        "num_bins": ">= 2", "v_min": "finite", "rpo_adam_b1": "[0, 1)", "aux_coef": ">= 0 and finite",
        "action_clip": "(0, 1]"}


def _step(value, towards):
    """The next representable value from `value` towards `towards` (the next integer for ints)."""
    if isinstance(value, int):
        return value + (1 if towards > value else -1)
    return math.nextafter(value, towards)


def _bad_values(kind, low, high, ends, optional):
    out = [] if optional else [None]
    if kind == "real":
        out += [math.nan, -INF]
    else:
        out.append(low + 0.5)  # not an integer
    if low != -INF:
        out.append(low if ends[0] == "(" else _step(low, -INF))
    if high != INF:
        out.append(high if ends[1] == ")" else _step(high, INF))
    if kind == "real" and (high != INF or ends[1] == ")"):
        out.append(INF)
    return out


def _good_values(kind, low, high, ends, optional):
    out = [None] if optional else []
    out.append(-1e300 if low == -INF else low if ends[0] == "[" else _step(low, INF))
    if high == INF and kind == "real":
        out.append(INF if ends[1] == "]" else 1e300)
    elif high != INF:
        out.append(high if ends[1] == "]" else _step(high, -INF))
    return out


BAD = [(name, value) for name, bounds in EXPECTED.items() for value in _bad_values(*bounds)]
GOOD = [(name, value) for name, bounds in EXPECTED.items() for value in _good_values(*bounds)]
# Fields that must stay ordered with a partner: a value moves its partner out of the way.
PARTNERS = {"v_min": ("v_max", 1), "v_max": ("v_min", -1), "log_std_min": ("log_std_max", 1),
            "log_std_max": ("log_std_min", -1)}


def _config(name, value) -> Config:
    changes = {name: value}
    if name in PARTNERS and value is not None:
        partner, sign = PARTNERS[name]
        changes[partner] = value + sign * (abs(value) + 1)
    return Config().replace(**changes)


def _hints() -> dict[str, object]:
    classes = [Config, *GROUPS.values()]
    return {name: hint for cls in classes for name, hint in typing.get_type_hints(cls).items()}


def _numeric(hint) -> bool:
    """int, float, or either or None."""
    return hint in (int, float) or set(typing.get_args(hint)) in ({int, type(None)}, {float, type(None)})


def test_every_field_has_a_rule():
    assert set(RULES) == set(flat_names()), "give each new field a rule in reppo_fast/config/bounds.py"


def test_numeric_fields_have_the_expected_ranges():
    hints = _hints()
    numeric = {name for name in flat_names() if _numeric(hints[name])}
    assert numeric == set(EXPECTED), "add each new numeric field's expected range to EXPECTED"
    assert {name for name, rule in RULES.items() if isinstance(rule, Range)} == numeric
    for name, (kind, low, high, ends, optional) in EXPECTED.items():
        rule = RULES[name]
        assert (rule.low, rule.high, rule.integer, rule.unset is not None) == (low, high, kind == "int",
                                                                               optional), name
        assert rule.low_open == (ends[0] == "(") or low == -INF, name
        assert rule.high_open == (ends[1] == ")") or high == INF, name
        assert (rule.inf_means is not None) == (high == INF and ends[1] == "]"), name


def test_literal_and_bool_fields_are_free():
    hints = _hints()
    for name in flat_names():
        if name in _choices() or hints[name] is bool:
            assert isinstance(RULES[name], Free), name


@pytest.mark.parametrize("name, value", BAD)
def test_impossible_values_are_refused_in_one_line_naming_the_field(name, value):
    with pytest.raises(ConfigError) as err:
        validate(Config().replace(**{name: value}))
    message = str(err.value)
    assert message.startswith(f"{name} must ") and "\n" not in message and f"got {value}" in message
    if name in SAYS:
        assert SAYS[name] in message


@pytest.mark.parametrize("name, value", GOOD)
def test_values_just_inside_the_range_pass(name, value):
    validate(_config(name, value))


def test_a_config_file_with_a_wrong_type_is_refused():
    saved = json.loads(Config().to_json())
    saved["lr"], saved["num_envs"] = "fast", 1024
    with pytest.raises(ConfigError, match=r"^lr must be > 0 and finite, got 'fast'$"):
        validate(Config.from_json(json.dumps(saved)))


def test_empty_run_dir_is_refused():
    with pytest.raises(ConfigError, match=r"^run_dir must be a non-empty path \(or None: runs/"):
        validate(Config().replace(run_dir=""))
    validate(Config().replace(run_dir="runs/x"))


# Each field with each impossible value of its own type, as typed on the command line.
CLI_BAD = [(name, value) for name, value in BAD
           if value is not None and isinstance(value, float) == (EXPECTED[name][0] == "real")]


@pytest.fixture
def no_run(monkeypatch):
    """A config that got through validation would start training: fail instead."""
    def refuse(cfg, **kwargs):
        raise AssertionError(f"validation let {cfg} through")

    monkeypatch.setattr(runner, "run", refuse)


def _cli_error(argv, capsys) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("name, value", CLI_BAD)
def test_cli_refuses_impossible_values_in_one_line_without_a_traceback(name, value, capsys, no_run):
    text = repr(value) if isinstance(value, float) else str(value)  # repr: nan, inf, -inf, 5e-324
    err = _cli_error(["--env", "ToyPointMass", "--preset", "cpu", f"--{name.replace('_', '-')}={text}"],
                     capsys)
    assert err.startswith(f"error: {name} must ")


@pytest.mark.parametrize("argv, says", [
    (["--run-dir="], "run_dir must be a non-empty path"),
    (["--env="], "unknown env ''"),
    (["--algo", "rpo", "--rpo-target-alpha=1.0"], "rpo_target_alpha must lie in [0, 1)"),
    (["--algo", "ppo", "--clip-eps=-inf"], "clip_eps must be > 0 (or inf: no clipping)"),
])
def test_cli_refuses_other_impossible_values(argv, says, capsys, no_run):
    argv = argv if argv[0].startswith("--env") else ["--env", "ToyPointMass", "--preset", "cpu", *argv]
    assert says in _cli_error(argv, capsys)


def test_cli_error_exits_2_without_a_traceback_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-m", "reppo_fast.train", "--env", "ToyPointMass", "--lr", "nan"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert "error: lr must be > 0 and finite, got nan" in out.stderr.splitlines()


PRESET_ENVS = {"dmc": ("dmc", SUITES["dmc"]), "cpu": ("dmc", ("CartpoleBalance",)),
               "maniskill": ("maniskill", ("PickCube-v1",)), "maniskill_cpu": ("maniskill", ("PickCube-v1",))}


@pytest.mark.parametrize("preset, algo", sorted(PRESETS))
def test_every_preset_validates(preset, algo):
    """Every preset, with PPO's per-task DM Control overrides for each task, stays inside the ranges; so do
    the ToyPointMass configs the command-line tests start from."""
    suite, envs = PRESET_ENVS[preset]
    for env in envs if (preset, algo) == ("dmc", "ppo") else envs[:1]:
        validate(preset_config(preset, suite, algo, gpu=True, env=env))
    if preset == "cpu":
        validate(preset_config(preset, "toy", algo, env="ToyPointMass"))
