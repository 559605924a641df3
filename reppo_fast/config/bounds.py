"""Every flat config field's rule (`RULES`): the numbers' ranges, so `validate` refuses NaN, infinities and
out-of-range values in one line naming the field and the allowed values, and the fields checked elsewhere
(`Free`, with where). A test fails for a field without a rule.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

INF = math.inf


@dataclass(frozen=True)
class Range:
    """A number from `low` to `high`; an open end excludes its bound. NaN fails every comparison and is
    always refused, and so are infinities, except +inf where `inf_means` says what it means (the high end
    is then infinite). None is allowed only where `unset` says what it means; `hint` is advice appended to
    the message."""

    low: float = -INF
    high: float = INF
    low_open: bool = True
    high_open: bool = True
    integer: bool = False
    unset: str | None = None
    inf_means: str | None = None
    hint: str = ""

    def admits(self, value: object) -> bool:
        if value is None:
            return self.unset is not None
        kind = numbers.Integral if self.integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind):  # a config file may hold any JSON value
            return False
        if value == INF and self.inf_means is not None:
            return True
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self) -> str:
        """The allowed values, as the message's fix: `a positive integer`, `> 0 and finite`, `in (0, 1]`."""
        if self.integer and self.high == INF:
            return {0: "a non-negative integer", 1: "a positive integer"}.get(
                self.low, f"an integer >= {self.low}")
        if self.integer:
            return f"an integer in [{self.low}, {self.high}]"
        if self.low == -INF and self.high == INF:
            return "finite"
        if self.high == INF:
            top = f" (or inf: {self.inf_means})" if self.inf_means else " and finite"
            return f"{'>' if self.low_open else '>='} {self.low:g}{top}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"

    def refusal(self, name: str, value: object) -> str | None:
        """The one-line message refusing `value` for field `name`, or None when it is allowed."""
        if self.admits(value):
            return None
        verb = "lie" if self.describe().startswith("in ") else "be"
        unset = f" (or None: {self.unset})" if self.unset is not None else ""
        shown = value if isinstance(value, numbers.Real) and not isinstance(value, bool) else repr(value)
        hint = f"; {self.hint}" if self.hint else ""
        return f"{name} must {verb} {self.describe()}{unset}, got {shown}{hint}"


@dataclass(frozen=True)
class NonEmptyPath:
    """A non-empty path string, or None meaning `unset` (an empty one would silently mean the cwd)."""

    unset: str

    def refusal(self, name: str, value: object) -> str | None:
        if value is None or (isinstance(value, str) and value.strip()):
            return None
        return f"{name} must be a non-empty path (or None: {self.unset}), got {value!r}"


@dataclass(frozen=True)
class NonEmptyName:
    """A non-empty name, or None meaning `unset` (an empty one would leave the choice to the service, not
    to the command line)."""

    unset: str

    def refusal(self, name: str, value: object) -> str | None:
        if value is None or (isinstance(value, str) and value.strip()):
            return None
        return f"{name} must be a non-empty name (or None: {self.unset}), got {value!r}"


@dataclass(frozen=True)
class Free:
    """No per-field rule here; `why` says what checks the field instead."""

    why: str

    def refusal(self, name: str, value: object) -> str | None:
        return None


def _positive_int(unset: str | None = None) -> Range:
    return Range(1, low_open=False, integer=True, unset=unset)


def _at_least(low: float) -> Range:
    """>= low and finite."""
    return Range(low, low_open=False)


_POSITIVE = Range(0.0)  # > 0 and finite
_PROBABILITY_OPEN_TOP = Range(0.0, 1.0, low_open=False)  # [0, 1): Adam betas, EMA rates
_CHOICE = Free("a Literal: validate's _choices() names the allowed values")
_FLAG = Free("a bool: the command line takes True/False")

# Flat field name -> its rule, in Config.flat() order. Bounds shared by several fields are the ones above.
RULES: dict[str, Range | NonEmptyPath | NonEmptyName | Free] = {
    # --- run
    "env": Free("parse_args resolves it (resolve_env), refusing unknown names with the closest ones"),
    "algo": _CHOICE,
    "preset": _CHOICE,
    "framework": _CHOICE,
    "kernels": _CHOICE,
    "kernel_overrides": Free("validate_choice names the allowed ops and backends"),
    # JAX's PRNGKey keeps the low 32 bits (x64 off), so a larger seed would silently repeat a smaller one;
    # numpy's SeedSequence refuses negatives.
    "seed": Range(0, 2**32 - 1, low_open=False, high_open=False, integer=True),
    "total_steps": _positive_int(),
    "run_dir": NonEmptyPath("runs/<env>-<algo>-<framework>-s<seed>-<time>"),
    "eval_interval": _positive_int(),
    "num_eval_envs": _positive_int(),
    "checkpoint_interval": _positive_int(),
    "iterations_per_dispatch": _positive_int(),
    "video_interval": _positive_int(unset="no videos"),
    "progress": _FLAG,
    "profile": _FLAG,
    "profile_warmup": Range(0, low_open=False, integer=True),
    "env_impl": _CHOICE,
    "action_repeat": _positive_int(),
    "bootstrap_terminations": _FLAG,
    "episode_length": _positive_int(unset="the env's own"),
    # --- tracking
    "wandb_project": NonEmptyName("no tracking"),
    "wandb_entity": NonEmptyName("the W&B account's default"),
    "wandb_mode": _CHOICE,
    # --- faults
    "obs_limit": Range(0.0, inf_means="only non-finite values count as blown up"),
    "max_skipped_iterations": _positive_int(),
    # --- start-up
    "compile_cache": _FLAG,
    "compile_cache_dir": NonEmptyPath("$XDG_CACHE_HOME/reppo_fast or ~/.cache/reppo_fast"),
    # --- devices
    "devices": _positive_int(unset="every local device"),
    "multi_host": _FLAG,
    # --- data
    "num_envs": _positive_int(),
    "num_steps": _positive_int(),
    "num_epochs": _positive_int(),
    "num_minibatches": _positive_int(),
    # --- optimisation
    "lr": _POSITIVE,
    # Infinity would clip nothing, which None already says.
    "max_grad_norm": Range(0.0, unset="no clipping"),
    "gamma": Range(0.0, 1.0, unset="1 - 10 / max_episode_steps", hint="the paper uses 0.99 on DMC"),
    "lmbda": Range(0.0, 1.0, low_open=False, high_open=False, hint="the paper uses 0.95"),
    # --- networks
    "actor_hidden": _positive_int(),
    "actor_hidden_blocks": _positive_int(),
    "critic_hidden": _positive_int(),
    "critic_hidden_blocks": _positive_int(),
    "action_clip": Range(0.0, 1.0, high_open=False),
    "obs_norm": _FLAG,
    "precision": _CHOICE,
    # --- reppo (v_min < v_max and log_std_min < log_std_max are validate's)
    "num_bins": Range(2, low_open=False, integer=True, hint="the paper uses 151"),
    "v_min": Range(),
    "v_max": Range(),
    "sigma_ratio": _POSITIVE,
    "aux_coef": _at_least(0.0),
    "kl_target": _POSITIVE,
    "kl_estimator": _CHOICE,
    "kl_samples": _positive_int(),
    "actor_objective": _CHOICE,
    # The target entropy is -ent_target_mult * action_dim: a negative multiplier would target a positive
    # entropy, which neither the reference nor the paper's tuning does.
    "ent_target_mult": _at_least(0.0),
    # The multipliers start at these and are learnt in log space: 0 would start them at log 0 = -inf.
    "alpha_init": _POSITIVE,
    "beta_init": _POSITIVE,
    "log_std_min": Range(unset="no bound"),
    "log_std_max": Range(unset="no bound"),
    # --- ppo
    "clip_eps": Range(0.0, inf_means="no clipping"),
    "entropy_coef": _at_least(0.0),
    "value_coef": _POSITIVE,
    "policy_std": _CHOICE,
    "reward_scaling": _POSITIVE,
    "normalize_advantage": _FLAG,
    # --- rpo (rpo_minibatches dividing the rollout is validate's)
    "rpo_epochs": _positive_int(),
    "rpo_minibatches": _positive_int(),
    "rpo_clip_low": Range(0.0, 1.0, high_open=False, hint="samples with rho < 1 - rpo_clip_low leave"),
    "rpo_clip_high": Range(0.0, inf_means="no upper cut"),
    "rpo_clip_mode": _CHOICE,
    "rpo_surr_coef": _at_least(0.0),
    "rpo_kl_coef": _at_least(0.0),
    "rpo_kl_dir": _CHOICE,
    "rpo_ent_coef": _at_least(0.0),
    "rpo_std": _CHOICE,
    "rpo_log_std_init": Range(),
    "rpo_grad_clip": Range(0.0, unset="no clip"),
    "rpo_critic_lr": _POSITIVE,
    "rpo_adam_b1": _PROBABILITY_OPEN_TOP,
    "rpo_adam_b2": _PROBABILITY_OPEN_TOP,
    "rpo_weight_decay": _at_least(0.0),
    "rpo_num_critics": _positive_int(),
    # 1 would freeze the target critics at their initial weights.
    "rpo_target_alpha": _PROBABILITY_OPEN_TOP,
    "rpo_remat": _FLAG,
    "rpo_float64": _FLAG,
    "rpo_single_solver_iteration": _FLAG,
    # --- torch
    "compile": _CHOICE,
    "cuda_graphs": _FLAG,
}


def field_refusal(name: str, value: object) -> str | None:
    """The one-line message refusing `value` for flat field `name` by its rule, or None when allowed."""
    return RULES[name].refusal(name, value)
