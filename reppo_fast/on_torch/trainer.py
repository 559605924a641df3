"""The torch trainer, the twin of on_jax/trainer.py: one iteration for every algorithm
(reppo_fast.algorithm), written once.

Per iteration, two phases over static buffers (on_torch/cuda_graph.py): the rollout (on_torch/rollout.py:
the env stepped from Python, torch envs being stateful, and per env step one graph-safe call of the
algorithm's `bootstrap` for step t and `act` for step t + 1), then the update phase (`_learn`: targets, the
flat batch, epochs x minibatches of the algorithm's update step, or the algorithm's own `update`, and the
metrics as one vector). On CUDA each phase is captured as one CUDA graph at its third call and replayed
after; compiled or eager, the phases have no .item() and no host sync. An algorithm with a
`window_objective` (RPO) has its rollout differentiated through the JAX physics (envs/jax_autograd.py) for
dJ/da, eagerly, and copied into the update phase's buffers. Metrics stay on the device until the runner
reads them, once per dispatch (`iterations`, `to_host`).

Under torchrun (on_torch/data_parallel.py) each rank runs this trainer on its own device with
num_envs / W envs (`self.env`); the networks start from rank 0's, every optimiser step averages the
gradients, the normaliser merges every rank's observations once per iteration and the metrics are the
group's. The checkpoint codec gathers every rank's rollout state on rank 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from reppo_fast.algorithm import Algorithm, EvalResult, eval_result
from reppo_fast.envs.contract_torch import bootstrap_terminations
from reppo_fast.on_torch.common import (
    NormState,
    episode_stats,
    guarded_step,
    mean_metrics,
    minibatches,
    norm_init,
    norm_merge,
    norm_pool,
    norm_update,
    normalize,
    reduce_metrics,
    train_metrics,
)
from reppo_fast.on_torch.compiling import compile_on, compiled, graphs_on
from reppo_fast.on_torch.cuda_graph import CudaCapture, Graphed, static_copy, write_
from reppo_fast.on_torch.data_parallel import SEED_SCHEME, SINGLE, DataParallel, rank_seed
from reppo_fast.on_torch.rollout import StaticRollout
from reppo_fast.precision import describe_torch, set_matmul_precision
from reppo_fast.profiling import NO_RANGES, Ranges, instrument_kernels


class RolloutCarry(NamedTuple):
    env: object              # the TorchVecEnv (stateful; checkpointed through its state_dict)
    norm: NormState
    ep_return: torch.Tensor  # [N] running undiscounted return of each env's current episode


@dataclass
class TrainState:
    actor: torch.nn.Module
    critic: torch.nn.Module
    actor_opt: torch.optim.Adam
    critic_opt: torch.optim.Adam
    rollout: RolloutCarry
    generator: torch.Generator  # policy and minibatch noise
    iteration: int = 0


class Pending(NamedTuple):
    """The metrics of `Trainer.iterations`, on the device until `to_host` reads them."""
    names: list[str]
    values: torch.Tensor  # [n, M]: row i holds iteration i's metrics in `names` order
    extras: list[dict]    # per iteration: the env's own episode metrics (host floats)


class _Phases:
    """One TrainState's static buffers and graph-safe phases (on_torch/cuda_graph.py): the rollout (None for
    a differentiated rollout, which runs eagerly and is copied into `fill`'s buffers) and `learn`."""

    def __init__(self, state: TrainState, rollout: StaticRollout | None):
        self.state, self.rollout, self.learn = state, rollout, None
        self._data = self._stats = None

    def fill(self, data, stats: dict) -> None:
        """The differentiated rollout's results into the static buffers `learn` reads."""
        if self._data is None:
            self._data, self._stats = static_copy(data), static_copy(stats)
        else:
            write_(self._data, data)
            write_(self._stats, stats)

    def data(self):
        return self.rollout.storage if self.rollout is not None else self._data

    def stats(self) -> dict:
        return self.rollout.stats if self.rollout is not None else self._stats


def make_optimizer(cfg, module: torch.nn.Module, device: torch.device) -> torch.optim.Adam:
    """Adam, fused (one kernel steps every parameter: a handful of launches where the per-parameter loop
    takes dozens); on CUDA with capturable state and a tensor learning rate, so a CUDA graph can take the
    step. (The gradient clip is in the update step: common.clip_grads_.)"""
    capturable = device.type == "cuda"
    lr = torch.tensor(cfg.lr, device=device) if capturable else cfg.lr
    return torch.optim.Adam(module.parameters(), lr=lr, capturable=capturable, fused=True)


def eval_seed(seed: int, iteration: int) -> int:
    """The evaluation env seed: a function of (seed, iteration) only, so a resumed run evaluates alike."""
    return (seed ^ 0x5EED) * 100_003 + iteration


class Trainer:
    """Holds config, envs, kernels and the algorithm; `iteration` steps the TrainState in place and
    returns it."""

    def __init__(self, cfg, env, eval_env, kernels, algorithm: Algorithm, device: torch.device,
                 ranges: Ranges = NO_RANGES, dp: DataParallel = SINGLE):
        """env: this rank's envs (num_envs / W); eval_env: rank 0's evaluation envs (None on the others)."""
        self.cfg, self.env, self.eval_env, self.algo, self.device = cfg, env, eval_env, algorithm, device
        self.dp, self.processes = dp, dp.world_size
        set_matmul_precision(cfg.precision)
        # Under torchrun the phases hold NCCL collectives (gradient all-reduce, normaliser pooling), which the
        # phases do not capture (a collective inside a graph is a known source of hangs): compiled only.
        self.compiled, self.graphs = compile_on(cfg, device), graphs_on(cfg, device) and dp.world_size == 1
        # An NVTX call inside a compiled or captured region would break the graph (and a replay would not
        # repeat it), so with either on, update/critic, update/actor and op/<name> are left out: `--compile
        # off --no-cuda-graphs` shows them.
        inner = self.compiled or self.graphs
        self.ranges, self.inner_ranges = ranges, NO_RANGES if inner else ranges
        self.kernels = instrument_kernels(kernels, self.inner_ranges if ranges.enabled else None)
        # The update step calls autograd.grad and the optimiser: dynamo may break the graph there, so it
        # is compiled without fullgraph; acting is plain tensor code and must compile whole.
        self.update_step = compiled(self._update_step, cfg, device, fullgraph=False)
        self.act = compiled(algorithm.act, cfg, device, fullgraph=True)
        self.bootstrap = compiled(algorithm.bootstrap, cfg, device, fullgraph=True)
        self.differentiable_env = None
        if algorithm.window_objective is not None:
            from reppo_fast.envs.jax_autograd import DifferentiableJaxEnv

            # Eager acting for a differentiated rollout: its backward pass needs every step's saved
            # activations at once, which static buffers rewritten at each step would destroy; and the
            # networks are small next to the physics, whose step JAX compiles anyway.
            self.act, self.bootstrap = algorithm.act, algorithm.bootstrap
            self.differentiable_env = DifferentiableJaxEnv(env, remat=cfg.rpo.rpo_remat)
        self._phases: _Phases | None = None
        self._metric_names: list[str] = []
        self.capture = CudaCapture  # how phases are captured when self.graphs (tests emulate it on a CPU)

    def describe(self) -> dict:
        return {"torch": torch.__version__, "device": str(self.device), "world_size": self.dp.world_size,
                "seeds": SEED_SCHEME, "compiled": self.compiled, "cuda_graphs": self.graphs,
                "algorithm": self.algo.name,
                "precision": describe_torch(self.cfg.precision)}

    def init_state(self, seed: int) -> TrainState:
        env, device = self.env, self.device
        torch.manual_seed(seed)  # network initialisation
        # Built where they train: every tensor the algorithm's init_networks makes (hist(0) through the bound
        # kernel, which on CUDA is a Triton kernel that cannot read a CPU tensor) is on the trainer's device.
        with torch.device(device):
            actor, critic = self.algo.init_networks(self.cfg, env, self.kernels)
        # Every rank starts from rank 0's networks (the same seed made them; the broadcast makes it sure).
        self.dp.broadcast_([*actor.state_dict().values(), *critic.state_dict().values()])
        seed = rank_seed(seed, self.dp.rank)
        if self.algo.make_optimizers is not None:
            actor_opt, critic_opt = self.algo.make_optimizers(self.cfg, actor, critic, device)
        else:
            actor_opt, critic_opt = (make_optimizer(self.cfg, module, device) for module in (actor, critic))
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        env.reset(seed)
        carry = RolloutCarry(env, norm_init(env.obs_size, device), torch.zeros(env.num_envs, device=device))
        return TrainState(actor, critic, actor_opt, critic_opt, carry, generator)

    def any_process(self, flag: bool) -> bool:
        if self.dp.world_size == 1:
            return flag
        return bool(self.dp.sum(torch.tensor(float(flag), device=self.device)).item() > 0)

    def evaluate(self, state: TrainState, seed: int, iteration: int) -> EvalResult:
        """Deterministic eval on fresh envs; the seed depends only on (seed, iteration): resumable."""
        return eval_result(evaluate(lambda obs: self.algo.policy_mean(state.actor, obs), state.rollout.norm,
                                    self.eval_env, eval_seed(seed, iteration), self.cfg).cpu().numpy())

    def policy(self, state: TrainState):
        """The deterministic policy `evaluate` plays, as a host function: raw observations [N, O] -> actions
        [N, A] (numpy float32), normalised with `state`'s statistics, frozen."""
        @torch.no_grad()
        def act(obs) -> np.ndarray:
            # A copy: torch refuses to share the read-only arrays JAX hands out.
            obs = torch.tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
            return deterministic_action(lambda o: self.algo.policy_mean(state.actor, o), state.rollout.norm,
                                        obs, self.cfg).cpu().numpy()
        return act

    def to_arrays(self, state: TrainState) -> dict[str, np.ndarray]:
        """The checkpoint's arrays. On W > 1 ranks (every rank must call it: a gather) each rank's rollout
        state (envs, episode returns, generator) is stored under `rank<r>.`, on rank 0; the others get {}."""
        arrays = state_to_arrays(state)
        if self.dp.world_size == 1:
            return arrays
        every = self.dp.gather_objects({k: v for k, v in arrays.items() if _per_rank(k)})
        if every is None:
            return {}
        return {**{k: v for k, v in arrays.items() if not _per_rank(k)},
                **{f"rank{r}.{k}": v for r, own in enumerate(every) for k, v in own.items()}}

    def from_arrays(self, template: TrainState, arrays: dict[str, np.ndarray]) -> TrainState:
        """Inverse of to_arrays: each rank takes its own rollout state. A checkpoint of another number of
        ranks restores the learning state, and the episodes start afresh (the envs' split has changed)."""
        saved = _saved_world_size(arrays)
        shared = {k: v for k, v in arrays.items() if not _per_rank(k) and not k.startswith("rank")}
        if saved == self.dp.world_size:
            prefix = f"rank{self.dp.rank}." if saved > 1 else ""
            own = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix) and _per_rank(
                k[len(prefix):])}
        else:
            own = {k: v for k, v in state_to_arrays(template).items() if _per_rank(k)}
            if self.dp.is_main:
                print(f"note: the checkpoint was written by {saved} rank(s), this run has "
                      f"{self.dp.world_size}: networks, optimisers and normaliser resume, episodes start "
                      "afresh")
        self._phases = None  # the state's optimiser tensors are new: its phases are made afresh
        return state_from_arrays(template, {**shared, **own})

    def iteration(self, state: TrainState):
        """One iteration: (state, metrics name -> [] device tensor; the caller reads them)."""
        state, values, names, extra = self._iterate(state)
        return state, {**{k: values[i] for i, k in enumerate(names)}, **extra}

    def iterations(self, state: TrainState, n: int):
        """n iterations with no host sync between them: (state, their metrics, still on the device, for
        `to_host`)."""
        rows, extras = [], []
        for _ in range(n):
            state, values, names, extra = self._iterate(state)
            rows.append(values)
            extras.append(extra)
        return state, Pending(names, torch.stack(rows), extras)

    @staticmethod
    def to_host(pending: Pending, n: int) -> dict[str, np.ndarray]:
        """The metrics of `iterations` as name -> [n] numpy: one device-to-host copy."""
        values = pending.values[:n].double().cpu().numpy()
        out = {k: values[:, i] for i, k in enumerate(pending.names)}
        out.update({k: np.asarray([extra[k] for extra in pending.extras[:n]], np.float64)
                    for k in pending.extras[0]})
        return out

    def _iterate(self, state: TrainState):
        """One iteration through the state's phases: (state, metric values [M] (the caller's own copy),
        their names, the env's host-side episode metrics)."""
        phases = self._phases_for(state)
        window = {}
        with self.ranges("rollout"):
            if phases.rollout is not None:
                phases.rollout.run()
            else:
                carry, data, stats, window = self._differentiated_rollout(state)
                phases.fill(data, stats)
                state.rollout = carry
        with self.ranges("update"):
            values = phases.learn()
        names = self._metric_names
        if window:
            window = reduce_metrics(window, self.dp)
            values = torch.cat([values, torch.stack([window[k].float().reshape(()) for k in sorted(window)])])
            names = names + sorted(window)
        else:
            values = values.clone()  # a replay overwrites the graph's output
        state.iteration += 1
        return state, values, names, self._episode_metrics(state.rollout.env)

    def _phases_for(self, state: TrainState) -> _Phases:
        """The state's static buffers and phases, made at its first iteration (and again for another state,
        or after from_arrays)."""
        if self._phases is not None and self._phases.state is state:
            return self._phases
        rollout = None
        if self.algo.window_objective is None:
            carry = state.rollout
            rollout = StaticRollout(self.algo, self.act, self.bootstrap, carry.env, state.actor, state.critic,
                                    carry.norm, carry.ep_return, state.generator, self.kernels, self.cfg,
                                    self.dp, self.graphs, self.capture)
            # From here on the carry IS the rollout's buffers, updated in place (checkpoints read them).
            state.rollout = RolloutCarry(carry.env, rollout.norm, rollout.ep_return)
        phases = _Phases(state, rollout)
        phases.learn = Graphed(lambda: self._learn(state, phases), enabled=self.graphs,
                               generators=(state.generator,), capture=self.capture)
        self._phases = phases
        return phases

    def _learn(self, state: TrainState, phases: _Phases) -> torch.Tensor:
        """The whole update phase, graph-safe: targets, the flat batch, epochs x minibatches of update
        steps, the metrics as one vector [M] (names in self._metric_names)."""
        cfg, kernels, algo = self.cfg, self.kernels, self.algo
        data, stats = phases.data(), phases.stats()
        with self.inner_ranges("returns"):
            tgt = algo.targets(data, kernels, cfg)
        batch = algo.flat_batch(state.actor, data, tgt, cfg)
        metrics = reduce_metrics(self._update(state, batch), self.dp)
        metrics.update(train_metrics(stats, data.reward, tgt.returns, self.dp))
        self._metric_names = sorted(metrics)
        return torch.stack([metrics[k].float().reshape(()) for k in self._metric_names])

    def _episode_metrics(self, env) -> dict:
        """The env's own episode metrics (ManiSkill's success rate), over every rank that has some."""
        own = env.episode_metrics()
        if self.dp.world_size == 1:
            return own
        every = [m for m in self.dp.all_objects(own) if m]
        return {k: sum(m[k] for m in every) / len(every) for k in every[0]} if every else {}

    def _rollout(self, actor, critic, carry: RolloutCarry, generator, env=None, perturbation=None):
        """The differentiated rollout's steps (a rollout that is not differentiated runs over static buffers,
        on_torch/rollout.py): cfg.num_steps steps of the algorithm's acting and bootstrap around env.step.
        env: what to step, carry.env if None (when differentiated: a DifferentiableJaxEnv of it);
        perturbation [T, N, A] or None: added to the actions sent to the env (to differentiate by).
        Returns (carry, transitions [T, N, ...], stats of the episodes that ended).

        On W > 1 ranks each updates the normaliser with its own observations while acting, and `seen`
        gathers the statistics of those alone; at the end the start statistics are merged with every
        rank's `seen` (norm_pool), so all ranks leave with the statistics of all the observations."""
        cfg, kernels, algo = self.cfg, self.kernels, self.algo
        norm, ep_return = carry.norm, carry.ep_return
        env = carry.env if env is None else env
        seen = norm_init(env.obs_size, env.device) if cfg.obs_norm and self.dp.world_size > 1 else None
        stats = {name: torch.zeros((), device=env.device)
                 for name in ("episode_return_sum", "episodes", "nonfinite")}
        steps = []
        with torch.set_grad_enabled(perturbation is not None):
            for t in range(cfg.num_steps):
                noise = algo.step_noise(generator, env.num_envs, env.action_size)
                if seen is not None:
                    seen = norm_update(seen, env.obs.detach())
                norm, obs, action, acted = self.act(actor, critic, norm, env.obs, noise, kernels, cfg)
                out = env.step(action if perturbation is None else action + perturbation[t])
                if cfg.bootstrap_terminations:
                    out = bootstrap_terminations(out)
                steps.append(self.bootstrap(actor, critic, norm, obs, action, acted, out, noise, kernels,
                                            cfg))
                ep_return = episode_stats(stats, ep_return, out.reward.detach(), out.terminated,
                                          out.truncated, out.nonfinite)
            data = type(steps[0])(*(torch.stack(field) for field in zip(*steps)))
        if seen is not None:
            norm = norm_merge(carry.norm, norm_pool(seen, self.dp))
        return RolloutCarry(carry.env, norm, ep_return), data, stats

    def _differentiated_rollout(self, state: TrainState):
        """The rollout with dJ/da of the algorithm's window objective J through the physics: the gradient at
        a zero perturbation u of the actions, filled into data.action_grad. One reverse pass; the env state
        reached is written back into carry.env, detached."""
        env, cfg = self.differentiable_env, self.cfg
        zero = torch.zeros(cfg.num_steps, env.num_envs, env.action_size, device=env.device,
                           requires_grad=True)
        env.begin()
        try:
            carry, data, stats = self._rollout(state.actor, state.critic, state.rollout, state.generator, env,
                                               zero)
        finally:
            env.end()
        objective = self.algo.window_objective(data, cfg)
        (grad,) = torch.autograd.grad(objective, zero)
        data = type(data)(*(x.detach() for x in data))._replace(action_grad=grad)
        return carry, data, stats, {"train/window_objective": objective.detach() / env.num_envs}

    def _update(self, state: TrainState, batch) -> dict:
        cfg = self.cfg
        if self.algo.update is not None:
            return self.algo.update(state, batch, self.kernels, cfg, self.inner_ranges, self.dp)
        size = batch[0].shape[0] // cfg.num_minibatches
        history = []
        for mb in minibatches(batch, cfg.num_epochs, cfg.num_minibatches, state.generator):
            noise = self.algo.update_noise(state.generator, size, self.env.action_size, cfg)
            history.append(self.update_step(state, mb, noise))
        return mean_metrics(history)

    def _update_step(self, state: TrainState, mb, noise) -> dict:
        """The algorithm's update step, kept only if finite (common.guarded_step)."""
        return guarded_step(lambda: self.algo.update_step(state, mb, noise, self.kernels, self.cfg,
                                                          self.inner_ranges, self.dp),
                            (state.actor, state.critic), (state.actor_opt, state.critic_opt), self.dp)


def deterministic_action(policy_mean, norm: NormState, obs: torch.Tensor, cfg) -> torch.Tensor:
    """The action evaluation plays on raw observations obs [N, O]: clip(tanh(mean)) of the policy's mean on
    the normalised observation, with policy_mean(normalised obs [N, O]) -> pre-tanh mean [N, A]."""
    mean = policy_mean(normalize(norm, obs, cfg.obs_norm))
    return torch.tanh(mean).clamp(-cfg.action_clip, cfg.action_clip)


@torch.no_grad()
def evaluate(policy_mean, norm: NormState, env, seed: int, cfg) -> torch.Tensor:
    """Undiscounted return [N] of one full episode per fresh env, deterministic action tanh(mean), with
    policy_mean(normalised obs [N, O]) -> pre-tanh mean [N, A]. Shared by every algorithm."""
    obs = env.reset(seed, random_step_count=False)
    ret = torch.zeros(env.num_envs, device=env.device)
    alive = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)
    for _ in range(env.max_episode_steps):
        out = env.step(deterministic_action(policy_mean, norm, obs, cfg))
        ret += torch.where(alive, out.reward, 0.0)
        alive &= ~(out.terminated | out.truncated)
        obs = out.obs
    return ret


# --- the checkpoint codec -----------------------------------------------------------------------------

def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def state_to_arrays(state: TrainState) -> dict[str, np.ndarray]:
    """The train state as named numpy arrays: `actor.<param>`, `critic.<param>`,
    `actor_opt.<param index>.<exp_avg|exp_avg_sq|step>`, `norm.<field>`, `ep_return`, `generator` (the RNG
    state bytes), `env.<key>` (the env's own state_dict), `iteration`. Optimiser hyper-parameters are not
    saved: they come from the run's config."""
    out: dict[str, np.ndarray] = {}
    for prefix, module in (("actor", state.actor), ("critic", state.critic)):
        out.update({f"{prefix}.{k}": _np(v) for k, v in module.state_dict().items()})
    for prefix, opt in (("actor_opt", state.actor_opt), ("critic_opt", state.critic_opt)):
        for index, slots in opt.state_dict()["state"].items():
            out.update({f"{prefix}.{index}.{k}": _np(v) if isinstance(v, torch.Tensor) else np.asarray(v)
                        for k, v in slots.items()})
    out.update({f"norm.{k}": _np(v) for k, v in state.rollout.norm._asdict().items()})
    out["ep_return"] = _np(state.rollout.ep_return)
    out["generator"] = _np(state.generator.get_state())
    try:
        out.update({f"env.{k}": np.asarray(v) for k, v in state.rollout.env.state_dict().items()})
    except NotImplementedError:
        pass  # e.g. ManiSkill: a resumed run starts fresh episodes (state_from_arrays says so)
    out["iteration"] = np.asarray(state.iteration, np.int64)
    return out


def _per_rank(name: str) -> bool:
    """A checkpoint entry each rank has its own of: its envs, their episode returns, its generator."""
    return name in ("ep_return", "generator") or name.startswith("env.")


def _saved_world_size(arrays: dict) -> int:
    """How many ranks wrote a checkpoint: its `rank<r>.` prefixes, or 1 when it has none."""
    ranks = {k.split(".", 1)[0] for k in arrays if k.startswith("rank") and k.split(".", 1)[0][4:].isdigit()}
    return max(len(ranks), 1)


def _take(arrays: dict, name: str, like: torch.Tensor) -> torch.Tensor:
    if name not in arrays:
        raise ValueError(f"checkpoint lacks {name}: it was written by a different config or version")
    value = np.asarray(arrays[name])
    if value.shape != tuple(like.shape):
        raise ValueError(f"checkpoint entry {name} has shape {list(value.shape)}, "
                         f"expected {list(like.shape)}: the config differs from the checkpoint's")
    return torch.as_tensor(value, device=like.device).to(like.dtype)


@torch.no_grad()
def state_from_arrays(state: TrainState, arrays: dict[str, np.ndarray]) -> TrainState:
    """Load `arrays` into a freshly initialised `state` in place (checked name by name) and return it:
    the inverse of state_to_arrays."""
    for prefix, module in (("actor", state.actor), ("critic", state.critic)):
        module.load_state_dict({k: _take(arrays, f"{prefix}.{k}", v)
                                for k, v in module.state_dict().items()})
    for prefix, opt, module in (("actor_opt", state.actor_opt, state.actor),
                                ("critic_opt", state.critic_opt, state.critic)):
        saved = opt.state_dict()
        params = list(module.parameters())
        slots = {}
        for index in range(len(params)):
            keys = sorted({k.rsplit(".", 1)[1] for k in arrays if k.startswith(f"{prefix}.{index}.")})
            if keys:
                device = params[index].device
                slots[index] = {k: torch.as_tensor(arrays[f"{prefix}.{index}.{k}"], device=device)
                                for k in keys}
        opt.load_state_dict({"state": slots, "param_groups": saved["param_groups"]})
    env = state.rollout.env
    norm = NormState(*(_take(arrays, f"norm.{k}", v) for k, v in state.rollout.norm._asdict().items()))
    state.rollout = RolloutCarry(env, norm, _take(arrays, "ep_return", state.rollout.ep_return))
    # A generator's state is a CPU byte tensor whatever device the generator draws on.
    state.generator.set_state(torch.as_tensor(arrays["generator"], device="cpu"))
    state.iteration = int(arrays["iteration"])
    env_arrays = {k[len("env."):]: v for k, v in arrays.items() if k.startswith("env.")}
    if env_arrays:
        env.load_state_dict(env_arrays)
    else:
        print(f"note: {env.name} cannot save its physics state; the resumed run starts fresh episodes")
        env.reset(state.iteration)
        state.rollout = RolloutCarry(env, norm, torch.zeros_like(state.rollout.ep_return))
    return state
