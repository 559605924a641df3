"""The host loop shared by every framework path: iterations, evaluation, logging, checkpoints, resume.

It talks to a framework's trainer through the `reppo_fast.algorithm.Trainer` protocol: `init_state`,
`iterations` (cfg.iterations_per_dispatch at most per call, their metrics read once with `to_host`),
`evaluate`, `policy` (eval videos), `describe` and the checkpoint codec `to_arrays` / `from_arrays`.

Data parallel (README, Many GPUs): a JAX run trains on every local device (`--devices`), over several hosts
with `--multi-host`; a torch run is one process per device under torchrun. Either way the main process
(rank 0) alone writes the run directory, the metrics, the progress bar and the checkpoints, and evaluates;
every process runs the iterations and the checkpoint codec, which gathers the other ranks' state.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import platform
import signal
import sys
import time
from pathlib import Path
from typing import NamedTuple

from reppo_fast import compile_cache, tracking
from reppo_fast.algorithm import APPLIED_STEPS, SKIPPED_STEPS, Algorithm, Trainer
from reppo_fast.checkpoint import (
    CheckpointWriteError,
    checkpoint_iteration,
    list_checkpoints,
    load_newest_valid,
    save_checkpoint,
)
from reppo_fast.config import Config, ConfigError, validate_world_size
from reppo_fast.envs.names import resolve_env
from reppo_fast.metrics import MetricsLogger
from reppo_fast.preemption import Stopped, StopSignals
from reppo_fast.profiling import CAPTURE, Ranges
from reppo_fast.progress import Progress
from reppo_fast.summary import summary_text

# What loads each suite's envs, for the line said before they load.
SUITE_SIMULATORS = {"dmc": "mujoco_playground", "toy": "analytic toy env", "maniskill": "ManiSkill3"}


class RunDirError(ValueError):
    """The run directory cannot be used as asked (holds another run, or has nothing to resume)."""


class Diverged(RuntimeError):
    """Every update step of cfg.max_skipped_iterations iterations in a row was non-finite and skipped."""


def default_run_dir(cfg: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.env}-{cfg.algo}-{cfg.framework}-s{cfg.seed}-{stamp}"


def load_run_config(run_dir: Path) -> Config:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise RunDirError(f"--resume {run_dir}: no config.json there; pass the directory of an earlier run")
    if not list_checkpoints(Path(run_dir) / "checkpoints"):
        raise RunDirError(f"--resume {run_dir}: no checkpoint in {run_dir}/checkpoints to resume from")
    try:
        saved = Config.from_json(path.read_text())
    except json.JSONDecodeError as err:  # ConfigError (unknown fields, bad values) says it already
        raise RunDirError(f"--resume {run_dir}: config.json is not valid JSON ({err}); restore it from the "
                          "run's meta.json argv or a backup") from None
    return saved.replace(run_dir=str(run_dir))


class Built(NamedTuple):
    cfg: Config         # with gamma resolved
    trainer: Trainer
    kernels: object     # the bound kernels
    env: object         # this process's (one device's) training envs
    ranges: Ranges      # the profiling ranges
    main: bool          # this is the main process (rank 0): it writes and evaluates


def _build(cfg: Config) -> Built:
    """Env, kernels and trainer of the configured framework (imports stay lazy: no jax for torch runs)."""
    if cfg.framework == "torch":
        from reppo_fast.on_torch.data_parallel import from_launcher

        dp = from_launcher()  # before JAX starts: it may restrict the GPUs JAX sees
        validate_world_size(cfg, dp.world_size, "torchrun --nproc_per_node")
    suite = resolve_env(cfg.env).suite
    # Before anything compiles. JAX runs the physics of every suite but ManiSkill's, on either framework.
    compile_cache.configure(cfg.compile_cache, cfg.compile_cache_dir, torch=cfg.framework == "torch",
                            jax=cfg.framework == "jax" or suite != "maniskill")
    from reppo_fast.kernels import bind
    from reppo_fast.kernels.fastest import op_shapes

    ranges = Ranges(cfg.profile, jax_annotations=cfg.framework == "jax",
                    torch_annotations=cfg.framework == "torch")
    if cfg.framework == "torch":
        from reppo_fast import process_env

        # JAX (the DMC physics behind the DLPack bridge) would otherwise grab 75% of GPU memory at start,
        # leaving torch too little; set before jax initialises its backend. (A JAX run keeps JAX's
        # preallocation: it has the GPU to itself.)
        process_env.configure(triton_interpreter_without_cuda=False)
        import torch

        from reppo_fast.envs import make_torch_env
        from reppo_fast.on_torch.trainer import Trainer as TorchTrainer

        device = torch.device("cuda", dp.local_rank) if torch.cuda.is_available() else torch.device("cpu")
        num_envs = cfg.num_envs // dp.world_size  # this rank's
        _loading(cfg.env, suite, dp.is_main)
        if cfg.algo == "rpo":
            from reppo_fast.envs.playground_torch import PlaygroundTorchEnv

            # RPO differentiates through the physics, which only JAX can: the toy too runs as the JAX VecEnv
            # behind DLPack (its torch twin has no gradient path), differentiated by envs/jax_autograd.py.
            env, eval_env = (PlaygroundTorchEnv(e, device=device) for e in _jax_envs(cfg, num_envs))
        else:
            env = make_torch_env(cfg.env, num_envs=num_envs, device=device, impl=cfg.env_impl,
                                 episode_length=cfg.episode_length, action_repeat=cfg.action_repeat,
                                 obs_limit=cfg.obs_limit)
            # Evaluation always plays the env's own full episodes, whatever the training time limit; rank 0
            # alone evaluates.
            eval_env = (make_torch_env(cfg.env, num_envs=cfg.num_eval_envs, device=device, impl=cfg.env_impl,
                                       action_repeat=cfg.action_repeat, obs_limit=cfg.obs_limit)
                        if dp.is_main else None)
        cfg = _resolve_gamma(cfg, env)
        # `auto` picks per op from the GPU benchmark table at this rank's shapes (kernels/fastest.py).
        kernels = bind(cfg.framework, cfg.kernels, cfg.kernel_overrides,
                       shapes=op_shapes(cfg, env.action_size, dp.world_size))
        algo = algorithm(cfg.framework, cfg.algo)
        trainer: Trainer = TorchTrainer(cfg, env, eval_env, kernels, algo, device, ranges, dp)
        return Built(cfg, trainer, kernels, env, ranges, dp.is_main)
    import jax

    from reppo_fast.on_jax.devices import initialize_multi_host, training_mesh
    from reppo_fast.on_jax.trainer import Trainer as JaxTrainer

    if cfg.multi_host:
        initialize_multi_host()
    mesh = training_mesh(cfg.devices)
    validate_world_size(cfg, mesh.size, "--devices")
    _loading(cfg.env, suite, jax.process_index() == 0)
    env, eval_env = _jax_envs(cfg, cfg.num_envs // mesh.size)
    cfg = _resolve_gamma(cfg, env)
    kernels = bind(cfg.framework, cfg.kernels, cfg.kernel_overrides,
                   shapes=op_shapes(cfg, env.action_size, mesh.size))
    trainer: Trainer = JaxTrainer(cfg, env, eval_env, kernels, algorithm(cfg.framework, cfg.algo), mesh)
    return Built(cfg, trainer, kernels, env, ranges, jax.process_index() == 0)


def _loading(env: str, suite: str, main: bool) -> None:
    """Say what the next seconds go to (importing the simulator, loading the model), before the first of
    them."""
    if main:
        print(f"loading {env} ({SUITE_SIMULATORS[suite]}) ...", flush=True)


def _jax_envs(cfg: Config, num_envs: int):
    """The JAX VecEnvs to train (num_envs of them: one device's) and to evaluate on; for RPO made
    differentiable, with float64 physics when cfg.rpo.rpo_float64."""
    from reppo_fast.envs import make_env

    if cfg.algo == "rpo" and cfg.rpo.rpo_float64:
        import jax

        # Before any model is built: mjx.put_model then keeps MuJoCo's float64 (the contract still hands
        # float32 observations and rewards to the networks; gradients cross the cast).
        jax.config.update("jax_enable_x64", True)
    env = make_env(cfg.env, num_envs=num_envs, impl=cfg.env_impl, episode_length=cfg.episode_length,
                   action_repeat=cfg.action_repeat, obs_limit=cfg.obs_limit)
    # Evaluation always plays the env's own full episodes, whatever the training time limit.
    eval_env = make_env(cfg.env, num_envs=cfg.num_eval_envs, impl=cfg.env_impl,
                        action_repeat=cfg.action_repeat, obs_limit=cfg.obs_limit)
    if cfg.algo == "rpo":
        _make_differentiable(cfg, env, eval_env)
    return env, eval_env


def _make_differentiable(cfg: Config, *envs) -> None:
    """RPO differentiates through the physics: refuse a task whose solver AD cannot run through, or (opted
    in) change its physics, the evaluation env's alike so it plays what was trained, and say so."""
    from reppo_fast.envs.differentiable import make_differentiable

    single = cfg.rpo.rpo_single_solver_iteration
    notes = {make_differentiable(env.raw, env.name, single_solver_iteration=single) for env in envs}
    for note in sorted(n for n in notes if n):  # the train and eval envs change alike: one line
        print(f"warning: {note}")


def algorithm(framework: str, algo: str) -> Algorithm:
    """The `ALGORITHM` of reppo_fast/on_<framework>/<algo>/ (imported only when asked for)."""
    return importlib.import_module(f"reppo_fast.on_{framework}.{algo}").ALGORITHM


def _resolve_gamma(cfg: Config, env) -> Config:
    """gamma None: 1 - 10 / max_episode_steps (the paper's rule for ManiSkill)."""
    if cfg.gamma is not None:
        return cfg
    gamma = 1.0 - 10.0 / env.max_episode_steps
    if not 0.0 < gamma < 1.0:
        raise ConfigError(f"gamma: 1 - 10/max_episode_steps = {gamma:.3f} is not in (0, 1) for "
                          f"{env.max_episode_steps}-step episodes; pass --gamma explicitly")
    return cfg.replace(gamma=gamma)


def _metadata(cfg: Config, trainer: Trainer, kernels, env) -> dict:
    return {"kernels": dict(kernels.bound), "kernel_reasons": dict(kernels.reasons),
            "framework": cfg.framework, "env": env.name,
            "obs_size": env.obs_size, "action_size": env.action_size,
            "max_episode_steps": env.max_episode_steps, **trainer.describe(),
            "python": platform.python_version(), "argv": sys.argv}


def _start(cfg: Config, run_dir: Path, trainer: Trainer, kernels, env, resume: bool, main: bool):
    """A fresh run with the run directory written (by the main process), or the newest checkpoint (every
    process reads it). Returns (its arrays or None, iterations done, elapsed seconds, last eval return); the
    state is made afterwards (`_initial_state`), under the progress bar, as it may compile for a while."""
    if not resume:
        if main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(cfg.to_json())
            (run_dir / "meta.json").write_text(json.dumps(_metadata(cfg, trainer, kernels, env), indent=2))
        return None, 0, 0.0, None
    path, arrays, meta, skipped = load_newest_valid(run_dir / "checkpoints")
    start = meta["iteration"]
    if main:
        for bad, reason in skipped:
            # Set aside (kept for a look), so that it neither shadows newer checkpoints nor gets resumed.
            bad.replace(bad.with_name(bad.name + ".damaged"))
            print(f"skipping damaged checkpoint {bad.name} ({reason}); kept as {bad.name}.damaged")
        print(f"resuming {run_dir} at iteration {start} ({start * cfg.steps_per_iteration:,} env steps) "
              f"from {path.name}")
    return arrays, start, meta["elapsed"], meta["last_eval"]


def _initial_state(trainer: Trainer, seed: int, arrays: dict | None, progress: Progress):
    """A fresh state, or the checkpoint's `arrays` in one. The first env reset and network initialisation
    compile (on JAX, hundreds of small executables: tens of seconds on a CPU): the bar says so meanwhile."""
    with progress.waiting("initialising the networks and envs"):
        state = trainer.init_state(seed)
        return state if arrays is None else trainer.from_arrays(state, arrays)


def run(cfg: Config, resume: bool = False) -> Path:
    """Train `cfg` (resume=True: continue cfg.run_dir from its newest valid checkpoint). Returns the run dir.

    Faults (README, Faults and resuming): Ctrl-C, SIGTERM and SIGUSR1 stop with a checkpoint (the signals
    at the end of the iteration in progress: raises preemption.Stopped); a periodic checkpoint that cannot
    be written (a full disk) warns and is retried at the next interval, a final one raises; a run whose
    every update step was skipped as non-finite for cfg.max_skipped_iterations iterations raises Diverged."""
    run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
    ckpt_dir = run_dir / "checkpoints"
    if not resume and list_checkpoints(ckpt_dir):
        raise RunDirError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                          "or choose another --run-dir")
    tracking.check(cfg)  # a missing wandb or login says so before the envs compile
    cfg, trainer, kernels, env, ranges, main = _build(cfg)
    arrays, start, elapsed, last_eval = _start(cfg, run_dir, trainer, kernels, env, resume, main)
    if main:
        print(f"run dir: {run_dir}  kernels: {dict(kernels.bound)}", flush=True)
    progress = Progress(cfg if main else cfg.replace(progress=False), start, last_eval)
    try:  # the bar is up: it closes on every way out, from here on too
        state = _initial_state(trainer, cfg.seed, arrays, progress)
        logger = (MetricsLogger(run_dir, resume=(start, start * cfg.steps_per_iteration) if resume else None,
                                tracker=tracking.start(cfg, run_dir, resume))
                  if main else _Silent())
    except BaseException:
        progress.close()
        raise
    done = start
    resume_hint = f"python -m reppo_fast.train --resume {run_dir}"

    def checkpoint(final: bool) -> None:
        """The state after iteration `done`: every process gathers its part, the main process writes."""
        meta = {"iteration": done, "elapsed": elapsed, "last_eval": last_eval}
        arrays = trainer.to_arrays(state)  # every process: on several, it gathers their parts
        if not main:
            return
        try:
            save_checkpoint(ckpt_dir, done, arrays, meta)
        except CheckpointWriteError as err:
            saved = _last_checkpoint(ckpt_dir)
            if final:
                raise CheckpointWriteError(err.errno, f"{err}; the last checkpoint written is {saved}: "
                                           f"iterations after it are lost. Free space, then {resume_hint}"
                                           ) from err
            print(f"\nwarning: {err}; training goes on and tries again at iteration "
                  f"{done + cfg.checkpoint_interval} (the last checkpoint written is {saved})",
                  file=sys.stderr, flush=True)

    pending = None      # (metrics, n) of a dispatch that ran but is not logged yet
    logged = 0          # of its iterations, those logged
    dispatching = False  # inside trainer.iterations: the state may not be saved (see the Ctrl-C handler)
    skipping = 0        # iterations in a row whose every update step was skipped as non-finite

    def log(metrics, n: int, t0: float) -> dict:
        """Log a dispatch's n iterations (their metrics read in one host sync; each is given 1/n of the
        dispatch's time). Raises Diverged at the iteration that ends cfg.max_skipped_iterations in a row."""
        nonlocal done, elapsed, pending, logged, skipping
        host = trainer.to_host(metrics, n)  # the one host sync of a dispatch
        iter_time = (time.perf_counter() - t0) / n
        for i in range(logged, n):
            scalars = {k: float(v[i]) for k, v in host.items()}
            elapsed += iter_time
            done += 1
            scalars.update({"time/iteration_s": iter_time, "time/elapsed_s": elapsed,
                            "time/env_steps_per_s": cfg.steps_per_iteration / iter_time})
            logger.log(done, done * cfg.steps_per_iteration, scalars)
            logged += 1
            all_skipped = scalars.get(APPLIED_STEPS) == 0 and scalars.get(SKIPPED_STEPS, 0) > 0
            skipping = skipping + 1 if all_skipped else 0
            if skipping >= cfg.max_skipped_iterations:
                raise Diverged(_diverged(done, skipping, ckpt_dir))
        pending = None
        return scalars

    compiled = trainer.describe().get("compiled", True)  # JAX always compiles; torch per --compile
    first_call = "compiling the iteration (first call)" if compiled else "first iteration"
    capture = contextlib.ExitStack()  # holds the `capture` range open from the end of warm-up to the end
    videos = None  # the main process's eval videos (cfg.video_interval)
    try:
        if main and cfg.video_interval is not None:
            from reppo_fast.video.recorder import TrainingVideos

            videos = TrainingVideos(cfg, run_dir, start * cfg.steps_per_iteration if resume else None)
        with StopSignals(announce=main) as signals:
            while done < cfg.num_iterations:
                if done == start + cfg.profile_warmup:
                    capture.enter_context(ranges(CAPTURE))
                n = dispatch_size(cfg, done, start)
                t0 = time.perf_counter()
                # The first call compiles (JAX; torch with compile on): minutes for a large env on a CPU.
                with progress.waiting(first_call) if done == start else contextlib.nullcontext():
                    dispatching = True
                    state, metrics = trainer.iterations(state, n)
                    dispatching, pending, logged = False, (metrics, n), 0
                    scalars = log(metrics, n, t0)
                env_steps = done * cfg.steps_per_iteration
                if main and (done % cfg.eval_interval == 0 or done == cfg.num_iterations):
                    t_eval = time.perf_counter()
                    with ranges("eval"), progress.waiting("evaluating"):
                        result = trainer.evaluate(state, cfg.seed, done)
                    elapsed += time.perf_counter() - t_eval
                    logger.log_eval(done, env_steps, result, elapsed)
                    last_eval = result.mean
                    if videos is not None and videos.due(done):  # not timed: videos are no part of training
                        logger.log_video(videos.record(trainer.policy(state), done, env_steps), env_steps)
                progress.update(done, scalars, last_eval)
                if done % cfg.checkpoint_interval == 0:
                    checkpoint(final=False)
                # Every process asks every other (a collective when there are several), so all stop here.
                if trainer.any_process(signals.received is not None):
                    signum = signals.received or signal.SIGTERM
                    checkpoint(final=True)  # again if periodic: every process takes the same branch
                    message = (f"stopped by {signal.Signals(signum).name} after iteration {done}; checkpoint "
                               f"saved. Continue with: {resume_hint}")
                    if main:
                        print(f"\n{message}", flush=True)
                    raise Stopped(signum, message)
    except KeyboardInterrupt:
        progress.close()
        if trainer.processes > 1:
            # The processes may stand in different collectives: a checkpoint now could deadlock. The periodic
            # ones hold every rank's state at one iteration.
            if main:
                print(f"\ninterrupted after iteration {done}; continue from the last checkpoint "
                      f"({_last_checkpoint(ckpt_dir)}) with: {resume_hint} (launched as this run was)")
            raise
        if dispatching:
            # Stopped inside `iterations`: a torch state is half way through an iteration, a JAX one was
            # donated to the call. Neither may be saved.
            if list_checkpoints(ckpt_dir):
                print(f"\ninterrupted during iteration {done + 1}; continue from the last checkpoint "
                      f"({_last_checkpoint(ckpt_dir)}) with: {resume_hint}")
            else:
                print(f"\ninterrupted during iteration {done + 1}, before the first checkpoint: nothing to "
                      "resume; start the run again")
            raise
        if pending is not None:  # the state already holds those iterations: keep their metrics too
            log(*pending, time.perf_counter())
        checkpoint(final=True)
        print(f"\ninterrupted after iteration {done}; checkpoint saved. Continue with: {resume_hint}")
        raise
    finally:
        capture.close()
        progress.close()
        if videos is not None:
            videos.close()
        logger.close(error=sys.exc_info()[1])  # the exception ending the run, if one does
    checkpoint(final=True)
    if main:
        print(summary_text(run_dir), flush=True)
    return run_dir


def dispatch_size(cfg: Config, done: int, start: int) -> int:
    """How many iterations the next dispatch runs: cfg.iterations_per_dispatch, ended early at the next
    evaluation, checkpoint, profile capture start or the end of the run, so each happens on time. The first
    dispatch of a run is one iteration: it compiles, and its time is the start-up's, not the others'."""
    if done == start:
        return 1
    ends = [cfg.num_iterations, done + cfg.eval_interval - done % cfg.eval_interval,
            done + cfg.checkpoint_interval - done % cfg.checkpoint_interval]
    if start + cfg.profile_warmup > done:
        ends.append(start + cfg.profile_warmup)
    return max(1, min(cfg.iterations_per_dispatch, *(end - done for end in ends)))


def _last_checkpoint(ckpt_dir: Path) -> str:
    saved = list_checkpoints(ckpt_dir)
    return saved[-1].name if saved else "none yet"


def _diverged(done: int, skipping: int, ckpt_dir: Path) -> str:
    """Diverged's message: which iterations, and the newest checkpoint from before them."""
    first = done - skipping + 1
    before = [p for p in list_checkpoints(ckpt_dir) if checkpoint_iteration(p) < first]
    good = f"{before[-1]}" if before else "none (it diverged before the first checkpoint)"
    return (f"training diverged: every update step of iterations {first}-{done} had a non-finite loss, "
            f"gradient or update and was skipped (update/skipped_steps in metrics.jsonl), so the networks "
            f"are still those of iteration {first - 1}. The last good checkpoint is {good}; start a new run "
            f"with a lower --lr or --max-grad-norm")


class _Silent:
    """The metrics logger of a process that is not the main one: it writes nothing."""

    def log(self, *args) -> None:
        pass

    def log_eval(self, *args) -> None:
        pass

    def log_video(self, *args) -> None:
        pass

    def close(self, error: BaseException | None = None) -> None:
        pass
