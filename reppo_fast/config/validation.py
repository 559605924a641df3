"""`validate`: every value that cannot work is refused before anything compiles, in one line naming the
field and the fix (each field's own range is its rule in `bounds.RULES`; the checks across fields are
here); and the framework/backend choices the kernel binding checks too.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Literal

from reppo_fast.config.bounds import RULES, field_refusal
from reppo_fast.config.fields import (
    BACKENDS,
    FRAMEWORKS,
    GROUPS,
    OPS,
    Config,
    ConfigError,
    ReppoConfig,
    RpoConfig,
)
from reppo_fast.config.presets import PRESETS, describe_presets


def validate_choice(framework: str, backend: str = "auto",
                    overrides: Mapping[str, str] | None = None) -> None:
    """Raise ValueError naming the bad framework, backend or op and the allowed ones (the kernel binding
    checks its arguments with this too)."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; choose one of {FRAMEWORKS}")
    allowed = BACKENDS[framework]
    if backend not in allowed:
        raise ValueError(f"unknown backend {backend!r} for framework {framework!r}; choose one of {allowed}")
    for op, op_backend in (overrides or {}).items():
        if op not in OPS:
            raise ValueError(f"unknown op {op!r} in overrides; choose among {OPS} "
                             "(hl_gauss_decode and hl_gauss_hist follow hl_gauss_ce)")
        if op_backend not in allowed:
            raise ValueError(f"unknown backend {op_backend!r} for op {op!r} on framework {framework!r}; "
                             f"choose one of {allowed}")


def _choices() -> dict[str, tuple]:
    """Flat field name -> its allowed values, for every field typed as a Literal."""
    classes = [Config, *GROUPS.values()]
    hints = {name: hint for cls in classes for name, hint in typing.get_type_hints(cls).items()}
    return {name: typing.get_args(hint) for name, hint in hints.items() if typing.get_origin(hint) is Literal}


def validate(cfg: Config) -> None:
    """Raise ConfigError naming the field and the fix for any value that cannot work."""
    values = cfg.flat()
    for name, choices in _choices().items():
        if values[name] not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {values[name]!r}")
    # Each field's own range first: the checks across fields below then compare finite numbers.
    for name in RULES:
        message = field_refusal(name, values[name])
        if message is not None:
            raise ConfigError(message)
    transitions = cfg.num_envs * cfg.num_steps
    if transitions % cfg.num_minibatches:
        raise ConfigError(
            f"num_minibatches={cfg.num_minibatches} must divide num_envs*num_steps={transitions}; "
            f"pick a divisor of {transitions} (e.g. {_nearest_divisor(transitions, cfg.num_minibatches)})")
    _validate_reppo(cfg.reppo)
    _validate_rpo(cfg)
    _validate_devices(cfg)
    if cfg.preset != "auto" and (cfg.preset, cfg.algo) not in PRESETS:
        raise ConfigError(f"preset: there is no {cfg.preset!r} preset for --algo {cfg.algo}; presets "
                          f"(algorithms): {describe_presets()}")
    try:
        validate_choice(cfg.framework, cfg.kernels)
    except ValueError as err:
        raise ConfigError(f"kernels: {err}") from None
    try:
        validate_choice(cfg.framework, "auto", cfg.kernel_overrides)
    except ValueError as err:
        raise ConfigError(f"kernel_overrides: {err}") from None


def _validate_devices(cfg: Config) -> None:
    if cfg.framework == "torch" and cfg.devices is not None:
        raise ConfigError(f"devices: the torch path runs one device per process; launch {cfg.devices} "
                          f"with torchrun --nproc_per_node {cfg.devices} -m reppo_fast.train ... "
                          "(without --devices)")
    if cfg.framework == "torch" and cfg.multi_host:
        raise ConfigError("multi_host is the JAX path's; a torch run spans hosts through torchrun's "
                          "rendezvous flags (--nnodes, --rdzv-endpoint): README, Many GPUs")


def validate_world_size(cfg: Config, world_size: int, how: str) -> None:
    """The envs and minibatches split evenly over world_size data-parallel ranks; `how` names what set the
    world size (the fix's other half)."""
    if cfg.num_envs % world_size:
        multiple = max(world_size, cfg.num_envs // world_size * world_size)
        raise ConfigError(f"num_envs={cfg.num_envs} does not split over {world_size} devices ({how}); "
                          f"pick a multiple of {world_size} (e.g. {multiple}) or another device count")
    local = cfg.num_envs // world_size * cfg.num_steps
    splits = [("num_minibatches", cfg.num_minibatches)]
    if cfg.algo == "rpo":
        splits.append(("rpo_minibatches", cfg.rpo.rpo_minibatches))
    for name, minibatches in splits:
        if local % minibatches:
            raise ConfigError(f"{name}={minibatches} must divide each device's share of the rollout, "
                              f"num_envs/{world_size}*num_steps={local} ({how} {world_size}); pick a "
                              f"divisor of {local} (e.g. {_nearest_divisor(local, minibatches)})")


def _validate_reppo(reppo: ReppoConfig) -> None:
    if not reppo.v_min < reppo.v_max:
        raise ConfigError(f"v_min ({reppo.v_min}) must be below v_max ({reppo.v_max})")
    bounds = (reppo.log_std_min, reppo.log_std_max)
    if None not in bounds and not bounds[0] < bounds[1]:
        raise ConfigError(f"log_std_min ({bounds[0]}) must be below log_std_max ({bounds[1]})")


def _validate_rpo(cfg: Config) -> None:
    rpo: RpoConfig = cfg.rpo
    transitions = cfg.num_envs * cfg.num_steps
    if transitions % rpo.rpo_minibatches:
        raise ConfigError(f"rpo_minibatches={rpo.rpo_minibatches} must divide "
                          f"num_envs*num_steps={transitions}; "
                          f"pick a divisor (e.g. {_nearest_divisor(transitions, rpo.rpo_minibatches)})")
    if cfg.algo != "rpo":
        return
    from reppo_fast.envs.names import resolve_env

    if resolve_env(cfg.env).suite == "maniskill":
        raise ConfigError("--algo rpo backpropagates through the physics, which ManiSkill's PhysX cannot do; "
                          f"{cfg.env} needs --algo reppo or ppo (RPO runs DM Control tasks and ToyPointMass)")
    if cfg.bootstrap_terminations:
        raise ConfigError("--algo rpo does not support --bootstrap-terminations (DM Control has no "
                          "terminations to bootstrap)")


def _nearest_divisor(n: int, near: int) -> int:
    """The divisor of n closest to `near` (the smaller on a tie); O(sqrt n)."""
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    divisors = small + [n // d for d in small]
    return min(divisors, key=lambda d: (abs(d - near), d))
