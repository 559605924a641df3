"""Training configuration: one typed dataclass, per-suite presets and validation.

Every field's docstring is its `--help` text. Presets (docs/algorithms.md section 7) set defaults; any field given on the
command line overrides the preset. `validate` runs before anything is compiled and names the field and the
fix for every bad value.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Literal

from reppo_fast.precision import MATMUL_PRECISIONS, MatmulPrecision


@dataclass
class Config:
    """REPPO training run. Defaults are the paper's DM Control setting (docs/algorithms.md section 7)."""

    # --- run -----------------------------------------------------------------------------------------
    env: str = "HumanoidRun"
    """Environment: a DM Control task name (e.g. HumanoidRun, CartpoleBalance), a short alias
    (Humanoid, Walker, Cheetah, ...), or ToyPointMass (a tiny analytic test env)."""
    preset: Literal["auto", "dmc", "maniskill", "maniskill_cpu", "cpu", "ppo", "ppo_cpu"] = "auto"
    """Hyper-parameter preset: `auto` picks the env's suite preset (ManiSkill without CUDA: `maniskill_cpu`;
    `--algo ppo`: `ppo`, mujoco_playground's Brax-PPO DM Control setting); `cpu` (`ppo_cpu` for PPO) is
    small and quick for CPU runs."""
    framework: str = "jax"
    """Framework path: `jax` (whole iteration jitted) or `torch` (torch.compile + CUDA graphs)."""
    algo: Literal["reppo", "ppo"] = "reppo"
    """Algorithm: `reppo`, or `ppo` (the paper's baseline; presets `ppo`, `ppo_cpu`)."""
    kernels: str = "auto"
    """Kernel backend for the hot ops: `auto`, `reference`, `pallas` (jax) or `triton` (torch)."""
    kernel_overrides: dict[str, str] = field(default_factory=dict)
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
    env_impl: str = "jax"
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
    """Critic width (encoder, Q head and predictor head)."""
    log_std_min: float | None = None
    """Optional lower bound on the actor's log std (off in the reference)."""
    log_std_max: float | None = None
    """Optional upper bound on the actor's log std (off in the reference)."""

    # --- critic: HL-Gauss ----------------------------------------------------------------------------
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

    # --- actor: entropy and KL -----------------------------------------------------------------------
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
    action_clip: float = 0.999
    """Actions sent to the env (and stored) are clipped to +-action_clip."""
    obs_norm: bool = True
    """Running observation normalisation (frozen during evaluation)."""
    matmul_precision: MatmulPrecision = "tf32"
    """float32 matmuls of the networks, on both frameworks: `tf32` (TF32 allowed on GPUs that have it:
    JAX's GPU default, which the authors' runs used) or `float32` (full precision). The physics keeps
    its own; a CPU computes float32 either way. Recorded in meta.json."""

    # --- PPO only (--algo ppo; the policy is the actor, the value network the critic) -------------------
    critic_layers: int = 5
    """PPO value network depth (REPPO's critic has a fixed layout)."""
    clip_eps: float = 0.2
    """PPO clipped-surrogate epsilon."""
    entropy_coef: float = 1e-2
    """PPO entropy bonus coefficient (entropy of the tanh-Gaussian, one reparameterised sample per state)."""
    value_coef: float = 0.25
    """PPO value loss coefficient on mean (V - G)^2 (Brax: 0.5 * vf_coefficient 0.5)."""
    reward_scaling: float = 10.0
    """PPO: rewards are multiplied by this before GAE (Brax's reward_scaling)."""
    normalize_advantage: bool = True
    """PPO: standardise advantages per minibatch."""

    # --- torch path only ---------------------------------------------------------------------------------
    compile: Literal["auto", "on", "off"] = "auto"
    """torch.compile the update step and the acting policy: `auto` = on for CUDA, off on CPU (where
    compiling costs more than it saves at these sizes)."""
    cuda_graphs: bool = True
    """On CUDA with compile on: capture the update step and acting in CUDA graphs
    (torch.compile mode `reduce-overhead`), so the GPU is not left waiting on Python launches."""
    bf16: bool = False
    """bf16 autocast for the networks in the update step (off until a parity run shows it is safe)."""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps // self.num_minibatches

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_iterations(self) -> int:
        return max(1, self.total_steps // self.steps_per_iteration)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"config file has unknown fields {unknown}; was it written by another version?")
        return cls(**data)


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the field and the fix."""


# Per-suite presets: only the fields that differ from the dataclass defaults (the DMC setting).
PRESETS: dict[str, dict[str, object]] = {
    "dmc": {},
    # ManiSkill3: shorter episodes, rewards in [-1, 1]-ish; gamma is set from max_episode_steps at load.
    "maniskill": {"v_min": -15.0, "v_max": 15.0, "gamma": None},
    # ManiSkill on a CPU: physx_cpu runs one env per process, so a handful of envs, small networks.
    "maniskill_cpu": {
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
    "cpu": {
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
    "ppo": {
        "algo": "ppo",
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
    "ppo_cpu": {
        "algo": "ppo",
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
PPO_PRESETS = ("ppo", "ppo_cpu")


def resolve_preset(preset: str, suite: str, algo: str = "reppo") -> str:
    """`auto` -> the suite's preset (`ppo` for PPO); `cpu` -> `ppo_cpu` for PPO; ManiSkill without CUDA
    (or with `cpu`) -> `maniskill_cpu`, since physx_cpu runs one env per process."""
    if algo == "ppo":
        name = {"auto": "ppo", "cpu": "ppo_cpu"}.get(preset, preset)
        if name not in PPO_PRESETS:
            raise ConfigError(f"preset: {preset!r} is a REPPO preset; with --algo ppo choose auto, "
                              f"{', '.join(PPO_PRESETS)} or cpu")
        return name
    name = SUITE_PRESET[suite] if preset == "auto" else preset
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {preset!r}; choose one of auto, {', '.join(PRESETS)}")
    if name in PPO_PRESETS:
        raise ConfigError(f"preset: {name!r} is a PPO preset; add --algo ppo")
    if suite == "maniskill" and (name == "cpu" or (preset == "auto" and not _cuda_available())):
        return "maniskill_cpu"
    return name


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def preset_config(preset: str, suite: str, algo: str = "reppo", **fields: object) -> Config:
    """The config of `preset` (resolved by resolve_preset) with `fields` set on top. ManiSkill tasks run
    on the torch path, so their framework defaults to torch."""
    name = resolve_preset(preset, suite, algo)
    suite_fields = {"framework": "torch"} if suite == "maniskill" else {}
    return dataclasses.replace(Config(), **{**suite_fields, **PRESETS[name], **fields, "preset": name})


def validate(cfg: Config) -> None:
    """Raise ConfigError naming the field and the fix for any value that cannot work."""
    from reppo_fast.kernels.binding import validate_choice

    positive = ["num_envs", "num_steps", "num_epochs", "num_minibatches", "total_steps", "eval_interval",
                "num_eval_envs", "checkpoint_interval", "actor_hidden", "actor_layers", "critic_hidden",
                "kl_samples"]
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {getattr(cfg, name)}")
    for name in ["lr", "sigma_ratio", "kl_target", "alpha_init", "beta_init", "clip_eps", "reward_scaling"]:
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"{name} must be > 0, got {getattr(cfg, name)}")
    if cfg.max_grad_norm is not None and not cfg.max_grad_norm > 0:
        raise ConfigError(f"max_grad_norm must be > 0 (or None: no clipping), got {cfg.max_grad_norm}")
    if cfg.critic_layers <= 0 or cfg.entropy_coef < 0 or cfg.value_coef <= 0:
        raise ConfigError("critic_layers and value_coef must be positive, entropy_coef >= 0")
    if cfg.profile_warmup < 0:
        raise ConfigError(f"profile_warmup must be >= 0, got {cfg.profile_warmup}")
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
    if cfg.num_bins < 2:
        raise ConfigError(f"num_bins must be at least 2, got {cfg.num_bins}; the paper uses 151")
    if not cfg.v_min < cfg.v_max:
        raise ConfigError(f"v_min ({cfg.v_min}) must be below v_max ({cfg.v_max})")
    if not 0.0 < cfg.action_clip <= 1.0:
        raise ConfigError(f"action_clip must lie in (0, 1], got {cfg.action_clip}")
    if cfg.aux_coef < 0 or cfg.ent_target_mult < 0:
        raise ConfigError("aux_coef and ent_target_mult must be >= 0")
    if None not in (cfg.log_std_min, cfg.log_std_max) and not cfg.log_std_min < cfg.log_std_max:
        raise ConfigError(f"log_std_min ({cfg.log_std_min}) must be below log_std_max ({cfg.log_std_max})")
    if cfg.kl_estimator not in ("sampled", "analytic"):
        raise ConfigError(f"kl_estimator must be 'sampled' or 'analytic', got {cfg.kl_estimator!r}")
    if cfg.actor_objective not in ("clipped", "full"):
        raise ConfigError(f"actor_objective must be 'clipped' or 'full', got {cfg.actor_objective!r}")
    if cfg.algo not in ("reppo", "ppo"):
        raise ConfigError(f"algo: unknown algorithm {cfg.algo!r}; choose 'reppo' or 'ppo'")
    if (cfg.algo == "ppo") != (cfg.preset in PPO_PRESETS) and cfg.preset != "auto":
        raise ConfigError(f"preset {cfg.preset!r} does not fit --algo {cfg.algo}: PPO runs take the ppo or "
                          "ppo_cpu preset, REPPO runs the others")
    if cfg.matmul_precision not in MATMUL_PRECISIONS:
        raise ConfigError(f"matmul_precision must be one of {MATMUL_PRECISIONS}, "
                          f"got {cfg.matmul_precision!r}")
    if cfg.compile not in ("auto", "on", "off"):
        raise ConfigError(f"compile must be 'auto', 'on' or 'off', got {cfg.compile!r}")
    if cfg.env_impl not in ("jax", "warp"):
        raise ConfigError(f"env_impl must be 'jax' or 'warp', got {cfg.env_impl!r}")
    try:
        validate_choice(cfg.framework, cfg.kernels, cfg.kernel_overrides)
    except ValueError as err:
        raise ConfigError(f"framework/kernels: {err}") from None


def _nearest_divisor(n: int, near: int) -> int:
    """The divisor of n closest to `near` (the smaller on a tie); O(sqrt n)."""
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    divisors = small + [n // d for d in small]
    return min(divisors, key=lambda d: (abs(d - near), d))
