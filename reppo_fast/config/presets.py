"""The presets: per (suite-level preset name, algorithm), the fields that differ from the dataclass defaults
(REPPO at the paper's DM Control setting, docs/algorithms.md section 7), and how `--preset` resolves.
"""

from __future__ import annotations

import typing

from reppo_fast.config.fields import RENAMED_PRESETS, Algo, Config, ConfigError, PresetName

# Presets by (suite-level name, algorithm): only the fields that differ from the dataclass defaults (REPPO
# at the DMC setting), by flat name.
PRESETS: dict[tuple[str, str], dict[str, object]] = {
    # Four iterations per dispatch (about 4 s at the speed the project aims for on one GPU): the device never
    # waits for the host to log, and the progress bar still moves every few seconds.
    ("dmc", "reppo"): {"iterations_per_dispatch": 4},
    # ManiSkill3: shorter episodes, rewards in [-1, 1]-ish; gamma is set from max_episode_steps at load.
    # Every episode end bootstraps (success and failure too), as the authors and ManiSkill's PPO do.
    ("maniskill", "reppo"): {"v_min": -15.0, "v_max": 15.0, "gamma": None, "bootstrap_terminations": True,
                             "iterations_per_dispatch": 4,
                             "num_eval_envs": 256},
    # ManiSkill on a CPU: physx_cpu runs one env per process, so a handful of envs, small networks.
    ("maniskill_cpu", "reppo"): {
        "v_min": -15.0,
        "v_max": 15.0,
        "gamma": None,
        "bootstrap_terminations": True,
        "num_envs": 8,
        "num_steps": 32,
        "num_epochs": 4,
        "num_minibatches": 4,
        "actor_hidden": 128,
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
    # These are playground's base values; preset_config adds its per-task overrides for the DM Control task
    # (config/playground_ppo.py, read from the installed playground: e.g. BallInCup gamma 0.95, WalkerRun
    # 100M steps, PendulumSwingup action_repeat 4 with 4 epochs, the last written by hand because playground
    # misspells that task) below any field passed explicitly. Needs mujoco_playground, as the tasks do.
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
        "actor_hidden_blocks": 4,
        "critic_hidden": 256,
        "critic_hidden_blocks": 5,
        "total_steps": 60_000_000,
        "eval_interval": 6,
        "checkpoint_interval": 10,
    },
    # PPO small and quick on a 2-core CPU: CartpoleBalance eval >= 900 at 328k steps (JAX) and 410k (torch)
    # on seed 0 with Brax's state-dependent std (within 330k-660k on JAX seeds 0-2 with the earlier scalar
    # std; with 4 x 4 updates per iteration one of 3 seeds stayed below 600 at 1M).
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
        "actor_hidden_blocks": 2,
        "critic_hidden": 128,
        "critic_hidden_blocks": 2,
        "episode_length": 200,
        "total_steps": 1_000_000,
        "num_eval_envs": 8,
        "eval_interval": 10,
        "checkpoint_interval": 50,
    },
    # RPO (experimental; ../shared/rpo_spec.md section 4): 32-step windows, the critics 16 epochs x 4
    # minibatches, (128, 128) LayerNorm + SiLU MLPs, actor lr 2e-3 (critics: rpo_critic_lr 1e-3), global
    # clip 1.0. Backpropagating through the physics costs memory in H x N x substeps: 256 envs on a GPU.
    ("dmc", "rpo"): {
        "num_envs": 256,
        "num_steps": 32,
        "num_epochs": 16,
        "num_minibatches": 4,
        "lr": 2e-3,
        "max_grad_norm": 1.0,
        "gamma": 0.99,
        "lmbda": 0.95,
        "actor_hidden": 128,
        "actor_hidden_blocks": 2,
        "critic_hidden": 128,
        "critic_hidden_blocks": 2,
        "total_steps": 20_000_000,
        "eval_interval": 50,
        "checkpoint_interval": 50,
    },
    # RPO on a 2-core CPU: the spec's 64 envs.
    ("cpu", "rpo"): {
        "num_envs": 64,
        "num_steps": 32,
        "num_epochs": 16,
        "num_minibatches": 4,
        "lr": 2e-3,
        "max_grad_norm": 1.0,
        "gamma": 0.99,
        "lmbda": 0.95,
        "actor_hidden": 128,
        "actor_hidden_blocks": 2,
        "critic_hidden": 128,
        "critic_hidden_blocks": 2,
        "total_steps": 1_000_000,
        "num_eval_envs": 8,
        "eval_interval": 25,
        "checkpoint_interval": 50,
    },
}

# What `auto` picks per suite: the paper's setting on a GPU, the suite's CPU preset without one (where the
# algorithm has one).
SUITE_PRESET = {"dmc": "dmc", "toy": "dmc", "maniskill": "maniskill"}
SUITE_CPU_PRESET = {"dmc": "cpu", "toy": "cpu", "maniskill": "maniskill_cpu"}


def describe_presets() -> str:
    """What exists, for error messages: `dmc (reppo, ppo), cpu (reppo, ppo), ...`."""
    by_name: dict[str, list[str]] = {}
    for name, algo in PRESETS:
        by_name.setdefault(name, []).append(algo)
    return ", ".join(f"{name} ({', '.join(algos)})" for name, algos in by_name.items())


def resolve_preset(preset: str, suite: str, algo: str = "reppo", *, gpu: bool | None = None) -> str:
    """The suite-level preset name `preset` means for `suite` and `algo`: `auto` -> the suite's preset
    (SUITE_PRESET) on a GPU, its CPU preset (SUITE_CPU_PRESET) without one where `algo` has it; ManiSkill's
    `cpu` -> `maniskill_cpu`, since physx_cpu runs one env per process. `gpu` (whether the run's framework
    sees a GPU: the caller probes the machine) is needed only for `auto`."""
    if preset in RENAMED_PRESETS:
        raise ConfigError(f"preset: {preset!r} is now `--algo ppo --preset {RENAMED_PRESETS[preset]}`")
    if preset not in typing.get_args(PresetName):
        raise ConfigError(f"preset: unknown preset {preset!r}; choose one of "
                          f"{', '.join(typing.get_args(PresetName))}")
    if algo not in typing.get_args(Algo):
        raise ConfigError(f"algo: unknown algorithm {algo!r}; choose one of "
                          f"{', '.join(typing.get_args(Algo))}")
    name = preset
    if preset == "auto":
        if gpu is None:
            raise ConfigError("preset: `auto` depends on the machine; pass gpu=True or False")
        cpu_name = SUITE_CPU_PRESET[suite]
        name = cpu_name if not gpu and (cpu_name, algo) in PRESETS else SUITE_PRESET[suite]
    if suite == "maniskill" and name == "cpu":
        name = "maniskill_cpu"
    if (name, algo) not in PRESETS:
        asked = f" (what --preset {preset} means for {suite})" if name != preset else ""
        raise ConfigError(f"preset: there is no {name!r} preset{asked} for --algo {algo}; presets "
                          f"(algorithms): {describe_presets()}")
    return name


def preset_config(preset: str, suite: str, algo: str = "reppo", *, gpu: bool | None = None,
                  **fields: object) -> Config:
    """The config of `preset` for `algo` (resolved by resolve_preset) with `fields` (flat names) set on top.
    ManiSkill tasks run on the torch path, so their framework defaults to torch. PPO's `dmc` preset on a
    DM Control task (`env`, default Config's) also takes playground's per-task overrides, below `fields`."""
    name = resolve_preset(preset, suite, algo, gpu=gpu)
    suite_fields = {"framework": "torch"} if suite == "maniskill" else {}
    task_fields: dict[str, object] = {}
    if (name, algo) == ("dmc", "ppo"):
        task_fields = _playground_ppo_overrides(str(fields.get("env", Config().env)))
    return Config().replace(**{**suite_fields, **PRESETS[name, algo], **task_fields, **fields, "algo": algo,
                               "preset": name})


def _playground_ppo_overrides(env: str) -> dict[str, object]:
    """Playground's Brax-PPO per-task fields for a DM Control `env` (any alias), {} for other suites; imports
    playground (and so jax) only here."""
    from reppo_fast.envs.names import resolve_env

    resolved = resolve_env(env)
    if resolved.suite != "dmc":
        return {}
    from reppo_fast.config.playground_ppo import brax_ppo_overrides

    return brax_ppo_overrides(resolved.name)
