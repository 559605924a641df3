"""The configuration's fields: `Config` and its groups (`ReppoConfig`, `PpoConfig`, `TorchConfig`), the
closed sets of choices, flat-name routing (`Config.replace`) and the saved form (`to_json`, `from_json`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from dataclasses import dataclass, field
from typing import Literal

from reppo_fast.precision import Precision

Algo = Literal["reppo", "ppo", "rpo"]
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

    clip_eps: float = 0.2
    """Clipped-surrogate epsilon."""
    entropy_coef: float = 1e-2
    """Entropy bonus coefficient (entropy of the tanh-Gaussian, one reparameterised sample per state)."""
    value_coef: float = 0.25
    """Value loss coefficient on mean (V - G)^2 (Brax: 0.5 * vf_coefficient 0.5)."""
    policy_std: Literal["state", "scalar"] = "state"
    """The policy's std: `state` (Brax's tanh-normal default: the MLP outputs 2A, std = softplus(raw)
    + 0.001) or `scalar` (state-independent, std = softplus(std_param) + 0.001, std_param starting at 1)."""
    reward_scaling: float = 10.0
    """Rewards are multiplied by this before GAE (Brax's reward_scaling)."""
    normalize_advantage: bool = True
    """Standardise advantages per minibatch."""


@dataclass(frozen=True)
class RpoConfig:
    """The fields only RPO reads (`cfg.rpo`; docs/algorithms.md section 11). RPO is experimental: its paper's
    full text and code are not public, so every open choice is a field, with the default of
    ../shared/rpo_spec.md. The window length H is `num_steps`; the critic trains `num_epochs` x
    `num_minibatches`; the actor's learning rate is `lr`, the global clip `max_grad_norm`."""

    rpo_epochs: int = 5
    """M: policy epochs per window, each reusing the window's action-gradients (M = 1 is plain SHAC)."""
    rpo_minibatches: int = 1
    """Minibatches per policy epoch (1: the full window)."""
    rpo_clip_low: float = 0.8
    """Samples with importance ratio rho < 1 - rpo_clip_low leave the surrogate."""
    rpo_clip_high: float = 1.0
    """Samples with importance ratio rho > 1 + rpo_clip_high leave the surrogate."""
    rpo_clip_mode: Literal["mask", "clip"] = "mask"
    """`mask`: weight sg(rho) inside [1 - low, 1 + high], 0 outside; `clip`: weight sg(clip(rho, ...))."""
    rpo_surr_coef: float = 1.0
    """lambda_surr: weight of the reparameterised surrogate."""
    rpo_kl_coef: float = 0.2
    """lambda_KL: weight of the KL penalty to the window's acting policy."""
    rpo_kl_dir: Literal["old_new", "new_old"] = "old_new"
    """KL direction: `old_new` = KL(pi_old || pi_theta), `new_old` = KL(pi_theta || pi_old)."""
    rpo_ent_coef: float = 0.0
    """lambda_ent: weight of the pre-tanh Gaussian's entropy bonus."""
    rpo_std: Literal["state_independent", "state_dependent"] = "state_independent"
    """The policy's log std: one parameter per action dimension, or a second head of the actor MLP."""
    rpo_log_std_init: float = -1.0
    """Initial log std (the parameter's value, or the head's offset)."""
    rpo_grad_clip: float | None = 1.0
    """Clip each sample's action-gradient g to this norm (not in the paper; None: no clip)."""
    rpo_critic_lr: float = 1e-3
    """The V critics' learning rate."""
    rpo_adam_b1: float = 0.7
    """AdamW beta1 (actor and critics)."""
    rpo_adam_b2: float = 0.95
    """AdamW beta2 (actor and critics)."""
    rpo_weight_decay: float = 0.0
    """AdamW weight decay (actor and critics)."""
    rpo_num_critics: int = 2
    """V critics, averaged; each regresses the TD(lambda) targets."""
    rpo_target_alpha: float = 0.2
    """Target critics after each iteration: target <- alpha * target + (1 - alpha) * online (SHAC)."""
    rpo_remat: bool = True
    """jax.checkpoint around the env step: the backward pass recomputes the physics instead of storing it
    (about 19x less memory for about 3% more time, measured on CheetahRun)."""
    rpo_float64: bool = False
    """Run the physics in float64 (jax_enable_x64): float32 gives non-finite action-gradients in some
    Cartpole envs (they are zeroed and counted either way). Slower; the networks stay float32."""
    rpo_single_solver_iteration: bool = False
    """Tasks whose MJX solver runs more than one iteration (a lax.while_loop, which reverse-mode AD cannot
    differentiate) are refused; this opt-in sets opt.iterations = 1 instead, which changes the physics."""


@dataclass(frozen=True)
class TorchConfig:
    """The fields only the torch path reads (`cfg.torch`)."""

    compile: Literal["auto", "on", "off"] = "auto"
    """torch.compile the update step, acting and bootstrap (inductor's default mode; the CUDA graphs are
    `cuda_graphs`'): `auto` = on for CUDA, off on CPU (where compiling costs more than it saves at these
    sizes)."""
    cuda_graphs: bool = True
    """On CUDA: capture each phase as one CUDA graph, replayed every iteration (compiled or eager): per env
    step one graph bootstraps step t and acts for t + 1, and the whole update phase (targets, epochs x
    minibatches of update steps, metrics) is one graph; so the GPU never waits on Python launches."""


# Config's group fields and their types.
GROUPS: dict[str, type] = {"reppo": ReppoConfig, "ppo": PpoConfig, "rpo": RpoConfig, "torch": TorchConfig}


@dataclass
class Config:
    """A training run. Defaults are REPPO at the paper's DM Control setting (docs/algorithms.md section 7)."""

    # --- run -----------------------------------------------------------------------------------------
    env: str = "HumanoidRun"
    """Environment: a DM Control task name (e.g. HumanoidRun, CartpoleBalance), a short alias
    (Humanoid, Walker, Cheetah, ...), or ToyPointMass (a tiny analytic test env)."""
    algo: Algo = "reppo"
    """Algorithm: `reppo`, `ppo` (the paper's baseline) or `rpo` (experimental: backpropagates through the
    MJX physics; JAX path and DM Control tasks)."""
    preset: PresetName = "auto"
    """Hyper-parameter preset of --algo: `auto` picks by the env's suite and the machine (on a GPU `dmc`,
    or `maniskill` for ManiSkill; without one, for the run's framework, the suite's CPU preset: `cpu`, or
    `maniskill_cpu`); `cpu` is small and quick for CPU runs. PPO has `dmc` (mujoco_playground's Brax-PPO
    DM Control setting) and `cpu`."""
    framework: Framework = "jax"
    """Framework path: `jax` (whole iteration jitted) or `torch` (torch.compile + CUDA graphs)."""
    kernels: Backend = "auto"
    """Kernel backend for the hot ops: `auto`, `reference`, `pallas` (jax) or `triton` (torch). `auto`
    binds, per op, the kernel that the last GPU benchmark report for this GPU measured faster than the
    compiled reference at the nearest benchmarked shape (reppo_fast/kernels/fastest.json), else the reference
    (always without a GPU or a report); meta.json records the choice and why."""
    kernel_overrides: dict[Op, Backend] = field(default_factory=dict)
    """Per-op backend overrides, e.g. `--kernel-overrides lambda_returns reference`."""
    seed: int = 0
    """Random seed (network init, env resets, sampling)."""
    total_steps: int = 50_000_000
    """Environment steps to train for (summed over all parallel envs)."""
    run_dir: str | None = None
    """Where to write config, metrics, TensorBoard events and checkpoints (default: runs/<env>-<time>)."""
    eval_interval: int = 20
    """Evaluate the deterministic policy every this many iterations (and after the last one)."""
    num_eval_envs: int = 1024
    """Fresh environments per evaluation; each plays one full episode. The mean return is logged with its
    standard error std / sqrt(num_eval_envs), so this sets the evaluation's noise (the authors use 1024)."""
    checkpoint_interval: int = 50
    """Write a checkpoint every this many iterations (a final one is always written)."""
    iterations_per_dispatch: int = 1
    """Iterations the host hands the device at once, at most (JAX: one jitted call looping over them; torch:
    one Python call): the metrics are read once per dispatch, so the device never waits for the host to
    log. The runner ends a dispatch early at an evaluation, a checkpoint or the end. Signals and the
    progress bar act between dispatches."""
    video_interval: int | None = None
    """Record one episode of the deterministic policy every this many evaluations (and at the last one) to
    RUN_DIR/videos/iter_<iteration>.mp4 and to TensorBoard (None: no videos). Needs a headless GL library
    (README, Videos) and `pip install 'reppo_fast[video]'`."""
    progress: bool = True
    """Show a progress bar (env steps, steps/s, last eval return, ETA)."""
    profile: bool = False
    """Emit NVTX ranges (rollout, returns, update, update/critic, update/actor, eval, op/<name>) for
    Nsight, and a `capture` range over every iteration after `profile_warmup`; zero cost when off.
    See profiles/README.md."""
    profile_warmup: int = 3
    """Iterations (compilation, autotuning, the torch phases' CUDA-graph capture at their third call) before
    the `capture` range opens when profiling."""
    env_impl: Literal["jax", "warp"] = "jax"
    """mujoco_playground physics implementation (`jax` is 3-30x faster than `warp` on CPU)."""
    action_repeat: int = 1
    """Apply each action for this many physics steps, summing their rewards (Brax's action_repeat; PPO's
    `dmc` preset takes mujoco_playground's per-task value). `episode_length` and `total_steps` count
    physics steps, as Brax does."""
    bootstrap_terminations: bool = False
    """Treat every episode end as a time limit: terminations (ManiSkill's success and failure) bootstrap
    from the value of the true final observation, as the authors and ManiSkill's PPO do. On in the
    ManiSkill presets; DM Control has no terminations."""
    episode_length: int | None = None
    """Time limit of TRAINING episodes in steps (default: the env's own). Time limits bootstrap from the
    true next observation, so a shorter one leaves the discounted objective unchanged but restarts
    episodes more often. Evaluation always plays the env's full episodes."""

    # --- tracking (README, Experiment tracking) -------------------------------------------------------
    wandb_project: str | None = None
    """Weights & Biases project to log to: the scalars of metrics.jsonl and eval.jsonl at env steps, the
    config and the eval videos (None: no tracking, and wandb is never imported). Needs
    `pip install 'reppo_fast[wandb]'`."""
    wandb_entity: str | None = None
    """W&B entity (user or team) owning the project (None: the logged-in account's default)."""
    wandb_mode: Literal["online", "offline", "disabled"] = "online"
    """W&B mode with a project set: `online` (needs `wandb login` or WANDB_API_KEY; never prompts),
    `offline` (writes RUN_DIR/wandb/ for a later `wandb sync`, no network) or `disabled` (no tracking)."""

    # --- faults (README, Faults and resuming) ----------------------------------------------------------
    obs_limit: float = 1e4
    """Physics blow-up guard: a step whose observation has an entry beyond +-obs_limit (or any non-finite
    obs, reward, qpos or qvel) counts as blown-up physics (train/nonfinite): the env is reset, its
    observation never reaches the normaliser and its reward is 0. MJX blow-ups pass through huge finite
    values before NaN; healthy DM Control and ManiSkill observations stay far below 1e4."""
    max_skipped_iterations: int = 5
    """Stop the run when every update step of this many consecutive iterations was skipped for a
    non-finite loss, gradient or update (update/skipped_steps); the message names the last good checkpoint."""

    # --- start-up (README, Start-up time) --------------------------------------------------------------
    compile_cache: bool = True
    """Keep compiled code between runs, so a restart skips most compiling: JAX's persistent compilation
    cache and torch inductor's caches, under compile_cache_dir. `--no-compile-cache`: JAX compiles afresh
    (inductor keeps its own default cache, in the temp dir)."""
    compile_cache_dir: str | None = None
    """Where the compile caches live (<dir>/jax, <dir>/inductor). None: $XDG_CACHE_HOME/reppo_fast or
    ~/.cache/reppo_fast, and a TORCHINDUCTOR_CACHE_DIR or JAX_COMPILATION_CACHE_DIR already set is kept."""

    # --- devices -------------------------------------------------------------------------------------
    devices: int | None = None
    """JAX path: data-parallel devices per host (None: every local device of JAX's default backend, i.e.
    every GPU). The torch path takes one device per process: launch it with torchrun (README, Many GPUs)."""
    multi_host: bool = False
    """JAX path: join a run over several hosts through jax.distributed.initialize (SLURM and Open MPI are
    detected; elsewhere set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)."""

    # --- data ----------------------------------------------------------------------------------------
    num_envs: int = 1024
    """Parallel environments, summed over every device (each of W devices steps num_envs / W)."""
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
    actor_hidden_blocks: int = 2
    """Actor hidden blocks before the output Linear (REPPO: Linear -> RMSNorm -> SiLU; PPO: Linear -> swish).
    The paper's "3 actor layers" counts Linear layers, the output one included: 2 hidden blocks."""
    critic_hidden: int = 512
    """Critic width (REPPO: encoder, Q head and predictor head; PPO and RPO: the value networks)."""
    critic_hidden_blocks: int = 5
    """PPO's and RPO's value networks: hidden blocks before the output Linear (REPPO's critic has a fixed
    layout)."""
    action_clip: float = 0.999
    """Actions sent to the env (and stored) are clipped to +-action_clip."""
    obs_norm: bool = True
    """Running observation normalisation (frozen during evaluation)."""
    precision: Precision = "tf32"
    """The networks' matmuls, the same on both frameworks (reppo_fast/precision.py): `tf32` (float32, TF32
    allowed on GPUs that have it: JAX's GPU default, which the authors' runs used), `float32` (full float32)
    or `bf16` (every Linear's inputs and weights rounded to bfloat16, products summed in float32, the sum
    rounded to bfloat16; acting, update and evaluation alike). Parameters, optimiser state, losses,
    normalisation, the kernels' inputs and the physics stay float32 under all three; a CPU computes
    `tf32` as float32 and `bf16` exactly. Recorded in meta.json."""

    # --- groups: the fields only one algorithm or only one framework reads ----------------------------
    reppo: ReppoConfig = field(default_factory=ReppoConfig)
    """REPPO only (`--algo reppo`): the HL-Gauss critic, the KL-bounded actor and its multipliers."""
    ppo: PpoConfig = field(default_factory=PpoConfig)
    """PPO only (`--algo ppo`; the policy is the actor, the value network the critic)."""
    rpo: RpoConfig = field(default_factory=RpoConfig)
    """RPO only (`--algo rpo`, experimental): the action-gradient reuse, its mask and KL, the V critics."""
    torch: TorchConfig = field(default_factory=TorchConfig)
    """PyTorch path only (`--framework torch`)."""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps // self.num_minibatches

    @property
    def steps_per_iteration(self) -> int:
        """Environment (physics) steps per iteration: each of the num_envs * num_steps transitions is
        action_repeat physics steps."""
        return self.num_envs * self.num_steps * self.action_repeat

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
                known = names | set(RENAMED_FIELDS) | set(MOVED_TO_TOP) | set(REPLACED_BY_PRECISION)
                unknown += [f"{key}.{name}" for name in value if name not in known]
                fields.update(value)
            elif (key in _top_names() or _group_of(key) is not None or key in RENAMED_FIELDS
                  or key in REPLACED_BY_PRECISION):
                fields[key] = value
            else:
                unknown.append(key)
        if unknown:
            raise ConfigError(f"config file has unknown fields {sorted(unknown)}; "
                              "was it written by another version?")
        for old, new in RENAMED_FIELDS.items():  # same meaning (hidden blocks), clearer name
            if old in fields:
                fields[new] = fields.pop(old)
        _precision_from_old_fields(fields)
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


def _precision_from_old_fields(fields: dict[str, object]) -> None:
    """A run saved before `precision` (issue 18): `matmul_precision` (tf32 or float32) becomes `precision`,
    and `torch.bf16` on (autocast in the torch update step) becomes `bf16`, which now also covers acting."""
    matmul, bf16 = fields.pop("matmul_precision", None), fields.pop("bf16", False)
    if bf16:
        fields["precision"] = "bf16"
    elif matmul is not None:
        fields.setdefault("precision", matmul)


def _unknown_field(name: str) -> str:
    if name in RENAMED_FIELDS:
        return f"config field {name!r} is now {RENAMED_FIELDS[name]!r} (same meaning: hidden blocks)"
    if name in REPLACED_BY_PRECISION:
        return f"config field {name!r} is now 'precision' ({REPLACED_BY_PRECISION[name]})"
    close = difflib.get_close_matches(name, flat_names(), n=3)
    hint = f"closest: {', '.join(close)}" if close else "`python -m reppo_fast.train --help` lists them"
    return f"unknown config field {name!r}; {hint}"


# The PPO presets' names before presets were keyed by algorithm: old run configs read as the new name.
RENAMED_PRESETS = {"ppo": "dmc", "ppo_cpu": "cpu"}
# Fields renamed in issue 13 (their values counted hidden blocks then as now): old run configs still read.
RENAMED_FIELDS = {"actor_layers": "actor_hidden_blocks", "critic_layers": "critic_hidden_blocks"}
# Group fields that became top-level ones (same meaning): a run config saved with them in the group reads.
MOVED_TO_TOP = {"critic_hidden_blocks"}
# Fields that `precision` replaced in issue 18 (old run configs read through _precision_from_old_fields).
REPLACED_BY_PRECISION = {"matmul_precision": "tf32, float32 or bf16 for both frameworks",
                         "bf16": "`precision bf16` for the networks on both frameworks"}
