"""Training configuration: typed dataclasses, per-(suite, algorithm) presets and validation.

`Config` holds what every algorithm and framework reads; the fields only one algorithm or only the torch
path reads live in its group (`cfg.reppo`, `cfg.ppo`, `cfg.torch`). Field names are unique across the
groups, so the command line stays flat (`--kl-target`, not `--reppo.kl-target`) and `Config.replace` takes
any field by its flat name. Every field's docstring is its `--help` text. Presets (docs/algorithms.md
section 7) set defaults; any field given on the command line overrides the preset. `validate` runs before
anything is compiled and names the field and the fix for every bad value.

Importing this module loads neither torch, jax nor the kernels: the kernel binding imports its tables of
choices from here, and the one machine-dependent choice (ManiSkill's `auto` preset) is passed in.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from reppo_fast.precision import MatmulPrecision

Algo = Literal["reppo", "ppo"]
Framework = Literal["jax", "torch"]
Backend = Literal["auto", "reference", "pallas", "triton"]
Op = Literal["tanh_normal", "hl_gauss_ce", "lambda_returns"]
PresetName = Literal["auto", "dmc", "cpu", "maniskill", "maniskill_cpu"]

FRAMEWORKS: tuple[str, ...] = typing.get_args(Framework)
# The kernel backends each framework has (reppo_fast.kernels.binding binds them).
BACKENDS: dict[str, tuple[str, ...]] = {"jax": ("auto", "reference", "pallas"),
                                        "torch": ("auto", "reference", "triton")}
# hl_gauss_decode and hl_gauss_hist travel with hl_gauss_ce (same module, same backend).
OPS: tuple[str, ...] = typing.get_args(Op)


@dataclass(frozen=True)
class ReppoConfig:
    """The fields only REPPO reads (`cfg.reppo`)."""

    num_bins: int = 151
    """HL-Gauss histogram bins K."""
    v_min: float = 0.0
    """Lowest value of the critic's support."""
    v_max: float = 150.0
    """Highest value of the critic's support."""
    sigma_ratio: float = 0.75
    """HL-Gauss smoothing sigma as a fraction of the bin width."""
    aux_coef: float = 1.0
    """Weight of the self-predictive auxiliary loss (next features and reward)."""
    kl_target: float = 0.1
    """KL(pi_old || pi) bound per state."""
    kl_estimator: Literal["sampled", "analytic"] = "sampled"
    """KL estimate: `sampled` (kl_samples pre-tanh samples, the reference) or `analytic` (exact)."""
    kl_samples: int = 16
    """Samples S for the sampled KL estimate."""
    actor_objective: Literal["clipped", "full"] = "clipped"
    """`clipped`: entropy-regularised Q where KL < kl_target, else beta * KL; `full`: always both."""
    ent_target_mult: float = 0.5
    """Target entropy is -ent_target_mult * action_dim (the reference code's sign)."""
    alpha_init: float = 0.01
    """Initial entropy multiplier alpha."""
    beta_init: float = 0.01
    """Initial KL multiplier beta."""
    log_std_min: float | None = None
    """Optional lower bound on the actor's log std (off in the reference)."""
    log_std_max: float | None = None
    """Optional upper bound on the actor's log std (off in the reference)."""


@dataclass(frozen=True)
class PpoConfig:
    """The fields only PPO reads (`cfg.ppo`)."""

    critic_layers: int = 5
    """Value network depth (REPPO's critic has a fixed layout)."""
    clip_eps: float = 0.2
    """Clipped-surrogate epsilon."""
    entropy_coef: float = 1e-2
    """Entropy bonus coefficient (entropy of the tanh-Gaussian, one reparameterised sample per state)."""
    value_coef: float = 0.25
    """Value loss coefficient on mean (V - G)^2 (Brax: 0.5 * vf_coefficient 0.5)."""
    reward_scaling: float = 10.0
    """Rewards are multiplied by this before GAE (Brax's reward_scaling)."""
    normalize_advantage: bool = True
    """Standardise advantages per minibatch."""


@dataclass(frozen=True)
class TorchConfig:
    """The fields only the torch path reads (`cfg.torch`)."""

    compile: Literal["auto", "on", "off"] = "auto"
    """torch.compile the update step and the acting policy: `auto` = on for CUDA, off on CPU (where
    compiling costs more than it saves at these sizes)."""
    cuda_graphs: bool = True
    """On CUDA with compile on: capture the update step and acting in CUDA graphs
    (torch.compile mode `reduce-overhead`), so the GPU is not left waiting on Python launches."""
    bf16: bool = False
    """bf16 autocast for the networks in the update step (off until a parity run shows it is safe)."""


# Config's group fields and their types.
GROUPS: dict[str, type] = {"reppo": ReppoConfig, "ppo": PpoConfig, "torch": TorchConfig}


@dataclass
class Config:
    """A training run. Defaults are REPPO at the paper's DM Control setting (docs/algorithms.md section 7)."""

    # --- run -----------------------------------------------------------------------------------------
    env: str = "HumanoidRun"
    """Environment: a DM Control task name (e.g. HumanoidRun, CartpoleBalance), a short alias
    (Humanoid, Walker, Cheetah, ...), or ToyPointMass (a tiny analytic test env)."""
    algo: Algo = "reppo"
    """Algorithm: `reppo`, or `ppo` (the paper's baseline)."""
    preset: PresetName = "auto"
    """Hyper-parameter preset of --algo: `auto` picks by the env's suite (`dmc`; ManiSkill: `maniskill`,
    or `maniskill_cpu` without CUDA); `cpu` is small and quick for CPU runs. PPO has `dmc`
    (mujoco_playground's Brax-PPO DM Control setting) and `cpu`."""
    framework: Framework = "jax"
    """Framework path: `jax` (whole iteration jitted) or `torch` (torch.compile + CUDA graphs)."""
    kernels: Backend = "auto"
    """Kernel backend for the hot ops: `auto`, `reference`, `pallas` (jax) or `triton` (torch)."""
    kernel_overrides: dict[Op, Backend] = field(default_factory=dict)
    """Per-op backend overrides, e.g. `--kernel-overrides lambda_returns reference`."""
    seed: int = 0
    """Random seed (network init, env resets, sampling)."""
    total_steps: int = 50_000_000
    """Environment steps to train for (summed over all parallel envs)."""
    run_dir: str | None = None
    """Where to write config, metrics, TensorBoard events and checkpoints (default: runs/<env>-<time>)."""
    eval_interval: int = 10
    """Evaluate the deterministic policy every this many iterations (and after the last one)."""
    num_eval_envs: int = 32
    """Fresh environments per evaluation; each plays one full episode."""
    checkpoint_interval: int = 50
    """Write a checkpoint every this many iterations (a final one is always written)."""
    progress: bool = True
    """Show a progress bar (env steps, steps/s, last eval return, ETA)."""
    profile: bool = False
    """Emit NVTX ranges (rollout, returns, update, update/critic, update/actor, eval, op/<name>) for
    Nsight, and a `capture` range over every iteration after `profile_warmup`; zero cost when off.
    See profiles/README.md."""
    profile_warmup: int = 2
    """Iterations (compilation, autotuning) before the `capture` range opens when profiling."""
    env_impl: Literal["jax", "warp"] = "jax"
    """mujoco_playground physics implementation (`jax` is 3-30x faster than `warp` on CPU)."""
    episode_length: int | None = None
    """Time limit of TRAINING episodes in steps (default: the env's own). Time limits bootstrap from the
    true next observation, so a shorter one leaves the discounted objective unchanged but restarts
    episodes more often. Evaluation always plays the env's full episodes."""

    # --- data ----------------------------------------------------------------------------------------
    num_envs: int = 1024
    """Parallel environments."""
    num_steps: int = 128
    """Rollout length T per iteration; one iteration collects num_envs * num_steps transitions."""
    num_epochs: int = 8
    """Passes over each rollout."""
    num_minibatches: int = 64
    """Minibatches per epoch; minibatch size = num_envs * num_steps / num_minibatches."""

    # --- optimisation --------------------------------------------------------------------------------
    lr: float = 3e-4
    """Adam learning rate (actor, critic and the two multipliers)."""
    max_grad_norm: float | None = 0.5
    """Clip each network's gradient to this global norm (None: no clipping, Brax PPO's default)."""
    gamma: float | None = 0.99
    """Discount factor, in (0, 1); None: 1 - 10 / max_episode_steps (the ManiSkill preset)."""
    lmbda: float = 0.95
    """TD(lambda) mixing, in [0, 1]."""

    # --- networks ------------------------------------------------------------------------------------
    actor_hidden: int = 512
    """Actor width."""
    actor_layers: int = 3
    """Actor hidden layers (Linear -> RMSNorm -> SiLU each)."""
    critic_hidden: int = 512
    """Critic width (REPPO: encoder, Q head and predictor head; PPO: the value network)."""
    action_clip: float = 0.999
    """Actions sent to the env (and stored) are clipped to +-action_clip."""
    obs_norm: bool = True
    """Running observation normalisation (frozen during evaluation)."""
    matmul_precision: MatmulPrecision = "tf32"
    """float32 matmuls of the networks, on both frameworks: `tf32` (TF32 allowed on GPUs that have it:
    JAX's GPU default, which the authors' runs used) or `float32` (full precision). The physics keeps
    its own; a CPU computes float32 either way. Recorded in meta.json."""

    # --- groups: the fields only one algorithm or only one framework reads ----------------------------
    reppo: ReppoConfig = field(default_factory=ReppoConfig)
    """REPPO only (`--algo reppo`): the HL-Gauss critic, the KL-bounded actor and its multipliers."""
    ppo: PpoConfig = field(default_factory=PpoConfig)
    """PPO only (`--algo ppo`; the policy is the actor, the value network the critic)."""
    torch: TorchConfig = field(default_factory=TorchConfig)
    """PyTorch path only (`--framework torch`)."""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps // self.num_minibatches

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_iterations(self) -> int:
        return max(1, self.total_steps // self.steps_per_iteration)

    def replace(self, **fields: object) -> Config:
        """A copy with `fields` set, each by its flat name (`kl_target=0.2`, as on the command line): a
        top-level field or a whole group directly, a group's field inside its group. An unknown name
        raises ConfigError with the closest names."""
        top: dict[str, object] = {}
        grouped: dict[str, dict[str, object]] = {}
        for name, value in fields.items():
            group = _group_of(name)
            if group is not None:
                grouped.setdefault(group, {})[name] = value
            elif name in _top_names():
                top[name] = value
            else:
                raise ConfigError(_unknown_field(name))
        cfg = dataclasses.replace(self, **top)
        return dataclasses.replace(cfg, **{group: dataclasses.replace(getattr(cfg, group), **values)
                                           for group, values in grouped.items()})

    def flat(self) -> dict[str, object]:
        """Every field by its flat name, the groups' fields unnested (the command line's view)."""
        out = {name: getattr(self, name) for name in _top_names() if name not in GROUPS}
        for group in GROUPS:
            out.update(dataclasses.asdict(getattr(self, group)))
        return out

    def to_json(self) -> str:
        """The nested form: top-level fields, and one object per group."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Config:
        """Read `to_json`'s nested form, or the flat form runs were saved in before the groups (issue 12),
        so those still resume. Unknown fields are refused."""
        data = json.loads(text)
        fields: dict[str, object] = {}
        unknown = []
        for key, value in data.items():
            if key in GROUPS:
                if not isinstance(value, dict):
                    raise ConfigError(f"config file: {key} must be an object of its group's fields, "
                                      f"got {value!r}; was it written by another version?")
                names = {f.name for f in dataclasses.fields(GROUPS[key])}
                unknown += [f"{key}.{name}" for name in value if name not in names]
                fields.update(value)
            elif key in _top_names() or _group_of(key) is not None:
                fields[key] = value
            else:
                unknown.append(key)
        if unknown:
            raise ConfigError(f"config file has unknown fields {sorted(unknown)}; "
                              "was it written by another version?")
        if fields.get("preset") in RENAMED_PRESETS:  # a PPO run saved before presets were per algorithm
            fields["preset"] = RENAMED_PRESETS[fields["preset"]]
        return cls().replace(**fields)


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the field and the fix."""


def _top_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Config))


def _group_of(name: str) -> str | None:
    """The group holding field `name`, or None for a top-level (or unknown) name."""
    for group, cls in GROUPS.items():
        if name in {f.name for f in dataclasses.fields(cls)}:
            return group
    return None


def flat_names() -> list[str]:
    """Every field's flat name: the top-level fields (without the groups) and each group's fields."""
    names = [name for name in _top_names() if name not in GROUPS]
    return names + [f.name for cls in GROUPS.values() for f in dataclasses.fields(cls)]


def _unknown_field(name: str) -> str:
    close = difflib.get_close_matches(name, flat_names(), n=3)
    hint = f"closest: {', '.join(close)}" if close else "`python -m reppo_fast.train --help` lists them"
    return f"unknown config field {name!r}; {hint}"


# Presets by (suite-level name, algorithm): only the fields that differ from the dataclass defaults (REPPO
# at the DMC setting), by flat name.
PRESETS: dict[tuple[str, str], dict[str, object]] = {
    ("dmc", "reppo"): {},
    # ManiSkill3: shorter episodes, rewards in [-1, 1]-ish; gamma is set from max_episode_steps at load.
    ("maniskill", "reppo"): {"v_min": -15.0, "v_max": 15.0, "gamma": None},
    # ManiSkill on a CPU: physx_cpu runs one env per process, so a handful of envs, small networks.
    ("maniskill_cpu", "reppo"): {
        "v_min": -15.0,
        "v_max": 15.0,
        "gamma": None,
        "num_envs": 8,
        "num_steps": 32,
        "num_epochs": 4,
        "num_minibatches": 4,
        "actor_hidden": 128,
        "actor_layers": 2,
        "critic_hidden": 128,
        "lr": 1e-3,
        "total_steps": 200_000,
        "num_eval_envs": 4,
        "eval_interval": 20,
        "checkpoint_interval": 20,
    },
    # Small and quick on a 2-core CPU: learns CartpoleBalance (eval >= 900) in about 400k steps.
    # Short training episodes restart envs from their initial states more often (time limits bootstrap,
    # so the objective is unchanged); evaluation still plays full episodes.
    ("cpu", "reppo"): {
        "num_envs": 256,
        "num_steps": 16,
        "num_epochs": 4,
        "num_minibatches": 8,
        "actor_hidden": 128,
        "actor_layers": 2,
        "critic_hidden": 128,
        "lr": 1e-3,
        "episode_length": 200,
        "total_steps": 600_000,
        "num_eval_envs": 8,
        "eval_interval": 10,
        "checkpoint_interval": 50,
    },
    # mujoco_playground's Brax-PPO DM Control setting (dm_control_suite_params.brax_ppo_config, Brax's
    # make_ppo_networks defaults): 2048 envs, 16 epochs of 32 minibatches, each of 1024 30-step unrolls.
    # One iteration here collects the same 983,040 transitions as 480 steps of 2048 envs, so GAE runs
    # over 480-step segments instead of Brax's 30. Brax's clip is 0.3; the paper's baseline uses 0.2.
    ("dmc", "ppo"): {
        "num_envs": 2048,
        "num_steps": 480,
        "num_epochs": 16,
        "num_minibatches": 32,
        "lr": 1e-3,
        "max_grad_norm": None,
        "gamma": 0.995,
        "lmbda": 0.95,
        "actor_hidden": 32,
        "actor_layers": 4,
        "critic_hidden": 256,
        "critic_layers": 5,
        "total_steps": 60_000_000,
        "eval_interval": 5,
        "checkpoint_interval": 10,
    },
    # PPO small and quick on a 2-core CPU: CartpoleBalance eval >= 900 within 330k-660k steps on JAX seeds
    # 0-2 (with 4 x 4 updates per iteration one of 3 seeds stayed below 600 at 1M).
    ("cpu", "ppo"): {
        "num_envs": 256,
        "num_steps": 32,
        "num_epochs": 8,
        "num_minibatches": 8,
        "lr": 1e-3,
        "max_grad_norm": None,
        "gamma": 0.99,
        "lmbda": 0.95,
        "actor_hidden": 64,
        "actor_layers": 2,
        "critic_hidden": 128,
        "critic_layers": 2,
        "episode_length": 200,
        "total_steps": 1_000_000,
        "num_eval_envs": 8,
        "eval_interval": 10,
        "checkpoint_interval": 50,
    },
}

SUITE_PRESET = {"dmc": "dmc", "toy": "dmc", "maniskill": "maniskill"}
# The PPO presets' names before presets were keyed by algorithm: old run configs read as the new name.
RENAMED_PRESETS = {"ppo": "dmc", "ppo_cpu": "cpu"}


def describe_presets() -> str:
    """What exists, for error messages: `dmc (reppo, ppo), cpu (reppo, ppo), ...`."""
    by_name: dict[str, list[str]] = {}
    for name, algo in PRESETS:
        by_name.setdefault(name, []).append(algo)
    return ", ".join(f"{name} ({', '.join(algos)})" for name, algos in by_name.items())


def resolve_preset(preset: str, suite: str, algo: str = "reppo", *, cuda: bool | None = None) -> str:
    """The suite-level preset name `preset` means for `suite` and `algo`: `auto` -> the suite's preset;
    ManiSkill with `cpu`, or with `auto` when `cuda` is False -> `maniskill_cpu`, since physx_cpu runs one
    env per process. `cuda` (the caller probes the machine) is needed only for ManiSkill's `auto`."""
    if preset in RENAMED_PRESETS:
        raise ConfigError(f"preset: {preset!r} is now `--algo ppo --preset {RENAMED_PRESETS[preset]}`")
    if preset not in typing.get_args(PresetName):
        raise ConfigError(f"preset: unknown preset {preset!r}; choose one of "
                          f"{', '.join(typing.get_args(PresetName))}")
    if algo not in typing.get_args(Algo):
        raise ConfigError(f"algo: unknown algorithm {algo!r}; choose one of "
                          f"{', '.join(typing.get_args(Algo))}")
    name = SUITE_PRESET[suite] if preset == "auto" else preset
    if suite == "maniskill" and preset == "auto" and cuda is None:
        raise ConfigError("preset: ManiSkill's `auto` preset depends on the machine; pass cuda=True or False")
    if suite == "maniskill" and (name == "cpu" or (preset == "auto" and not cuda)):
        name = "maniskill_cpu"
    if (name, algo) not in PRESETS:
        asked = f" (what --preset {preset} means for {suite})" if name != preset else ""
        raise ConfigError(f"preset: there is no {name!r} preset{asked} for --algo {algo}; presets "
                          f"(algorithms): {describe_presets()}")
    return name


def preset_config(preset: str, suite: str, algo: str = "reppo", *, cuda: bool | None = None,
                  **fields: object) -> Config:
    """The config of `preset` for `algo` (resolved by resolve_preset) with `fields` (flat names) set on top.
    ManiSkill tasks run on the torch path, so their framework defaults to torch."""
    name = resolve_preset(preset, suite, algo, cuda=cuda)
    suite_fields = {"framework": "torch"} if suite == "maniskill" else {}
    return Config().replace(**{**suite_fields, **PRESETS[name, algo], **fields, "algo": algo, "preset": name})


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
    positive = ["num_envs", "num_steps", "num_epochs", "num_minibatches", "total_steps", "eval_interval",
                "num_eval_envs", "checkpoint_interval", "actor_hidden", "actor_layers", "critic_hidden",
                "kl_samples", "critic_layers"]
    for name in positive:
        if values[name] <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {values[name]}")
    for name in ["lr", "sigma_ratio", "kl_target", "alpha_init", "beta_init", "clip_eps", "reward_scaling",
                 "value_coef"]:
        if not values[name] > 0:
            raise ConfigError(f"{name} must be > 0, got {values[name]}")
    for name in ["aux_coef", "ent_target_mult", "entropy_coef", "profile_warmup"]:
        if values[name] < 0:
            raise ConfigError(f"{name} must be >= 0, got {values[name]}")
    if cfg.max_grad_norm is not None and not cfg.max_grad_norm > 0:
        raise ConfigError(f"max_grad_norm must be > 0 (or None: no clipping), got {cfg.max_grad_norm}")
    if cfg.episode_length is not None and cfg.episode_length <= 0:
        raise ConfigError(f"episode_length must be positive (or unset), got {cfg.episode_length}")
    transitions = cfg.num_envs * cfg.num_steps
    if transitions % cfg.num_minibatches:
        raise ConfigError(
            f"num_minibatches={cfg.num_minibatches} must divide num_envs*num_steps={transitions}; "
            f"pick a divisor of {transitions} (e.g. {_nearest_divisor(transitions, cfg.num_minibatches)})")
    if cfg.gamma is not None and not 0.0 < cfg.gamma < 1.0:
        raise ConfigError(f"gamma must lie in (0, 1), got {cfg.gamma}; the paper uses 0.99 on DMC")
    if not 0.0 <= cfg.lmbda <= 1.0:
        raise ConfigError(f"lmbda must lie in [0, 1], got {cfg.lmbda}; the paper uses 0.95")
    if not 0.0 < cfg.action_clip <= 1.0:
        raise ConfigError(f"action_clip must lie in (0, 1], got {cfg.action_clip}")
    _validate_reppo(cfg.reppo)
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


def _validate_reppo(reppo: ReppoConfig) -> None:
    if reppo.num_bins < 2:
        raise ConfigError(f"num_bins must be at least 2, got {reppo.num_bins}; the paper uses 151")
    if not reppo.v_min < reppo.v_max:
        raise ConfigError(f"v_min ({reppo.v_min}) must be below v_max ({reppo.v_max})")
    bounds = (reppo.log_std_min, reppo.log_std_max)
    if None not in bounds and not bounds[0] < bounds[1]:
        raise ConfigError(f"log_std_min ({bounds[0]}) must be below log_std_max ({bounds[1]})")


def _nearest_divisor(n: int, near: int) -> int:
    """The divisor of n closest to `near` (the smaller on a tie); O(sqrt n)."""
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    divisors = small + [n // d for d in small]
    return min(divisors, key=lambda d: (abs(d - near), d))
