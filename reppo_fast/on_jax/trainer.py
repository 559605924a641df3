"""The JAX trainer: one jitted function per iteration, for every algorithm (reppo_fast.algorithm).

An iteration has no host round-trip inside: rollout (a lax.scan over steps), targets, then epochs x
minibatches of the algorithm's update step (nested lax.scans), then the metrics. The host loop
(reppo_fast.runner) calls `iterations` (up to cfg.iterations_per_dispatch of them in one dispatch, a
fori_loop around the iteration), `evaluate` and the checkpoint codec. The torch twin is
on_torch/trainer.py.

On W > 1 devices (on_jax/data_parallel.py) the same iteration runs under `shard_map` over a 1-D mesh: the
env state and the running episode returns are split over the devices along the env axis (each device
steps num_envs / W envs, `self.env` being one device's), everything else is replicated. Each device draws
its own rollout and minibatch noise (the replicated key folded with the device index), the update
averages gradients, and the normaliser merges every device's observations once per iteration. The env
state's reset key is one per device: `rollout.env.key` is [W, 2] in the sharded state.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from reppo_fast.algorithm import Algorithm, EvalResult, eval_result
from reppo_fast.envs.contract_jax import bootstrap_terminations
from reppo_fast.on_jax.common import (
    episode_stats,
    norm_init,
    norm_merge,
    norm_pool,
    norm_update,
    normalize,
    reduce_metrics,
    scan_minibatches,
    train_metrics,
)
from reppo_fast.on_jax.data_parallel import DATA_AXIS, SINGLE, DataParallel
from reppo_fast.precision import describe_jax, matmul_precision
from reppo_fast.profiling import instrument_kernels


class RolloutCarry(NamedTuple):
    env: Any                 # EnvState
    norm: Any                # NormState
    ep_return: jnp.ndarray   # [N] running undiscounted return of each env's current episode


class TrainState(NamedTuple):
    actor: Any          # the algorithm's policy params (REPPO: {"net", "log_alpha", "log_beta"})
    critic: Any         # the algorithm's value params
    actor_opt: Any      # optax state of the actor optimiser (REPPO: it also trains log_alpha, log_beta)
    critic_opt: Any
    rollout: RolloutCarry
    key: jnp.ndarray    # PRNG key (raw uint32[2], saved in checkpoints)
    iteration: jnp.ndarray  # [] int32 iterations completed


def make_optimizer(cfg) -> optax.GradientTransformation:
    """Adam, after a global-norm clip unless max_grad_norm is None."""
    if cfg.max_grad_norm is None:
        return optax.adam(cfg.lr)
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.lr))


SEED_SCHEME = ("one key from the seed, replicated; on W > 1 devices each draws its env resets, rollout and "
               "minibatch noise from that key folded with its global device index (jax.random.fold_in)")


def eval_key(seed: int, iteration: int):
    """The evaluation key: a function of (seed, iteration) only, so a resumed run evaluates alike."""
    return jax.random.fold_in(jax.random.PRNGKey(seed ^ 0x5EED), iteration)


class Trainer:
    """Holds the static pieces (config, envs, kernels, algorithm) and the jitted functions over TrainState."""

    def __init__(self, cfg, env, eval_env, kernels, algorithm: Algorithm, mesh: Mesh | None = None):
        """env: one device's envs (num_envs / W of them); mesh: the devices to train on (None: the default
        device alone)."""
        self.cfg, self.env, self.eval_env, self.algo = cfg, env, eval_env, algorithm
        self.mesh = mesh if mesh is not None and mesh.size > 1 else None
        self.dp = DataParallel(mesh.size) if self.mesh is not None else SINGLE
        self.processes = jax.process_count()
        # Inside jit a named_scope names the op's XLA ops, which become its NVTX range on GPU.
        self.kernels = instrument_kernels(kernels, jax.named_scope if cfg.profile else None)
        self.tx = make_optimizer(cfg)
        self.actor_tx, self.critic_tx = (algorithm.make_optimizers(cfg) if algorithm.make_optimizers
                                         else (self.tx, self.tx))
        iteration = self._at_networks_precision(self._iteration)
        if self.mesh is not None:
            iteration = self._sharded(iteration)
        self.iteration = jax.jit(iteration)
        # The state is donated: its buffers become the output state's, so k iterations hold one state.
        self._dispatch = jax.jit(self._looped(iteration), donate_argnums=0)
        self._evaluate = jax.jit(self._at_networks_precision(lambda actor, norm, key: evaluate(
            lambda obs: algorithm.policy_mean(actor, obs), norm, eval_env, key, cfg)))
        self._act = jax.jit(self._at_networks_precision(lambda actor, norm, obs: deterministic_action(
            lambda o: algorithm.policy_mean(actor, o), norm, obs, cfg)))

    def _at_networks_precision(self, fn):
        """fn traced with the networks' matmuls at cfg.precision (the physics keeps its own)."""
        def traced(*args):
            with matmul_precision(self.cfg.precision):
                return fn(*args)
        return traced

    def init_state(self, seed: int) -> TrainState:
        env = self.env
        k_actor, k_critic, k_env, key = jax.random.split(jax.random.PRNGKey(seed), 4)
        actor, critic = self.algo.init_networks(self.cfg, env, self.kernels, (k_actor, k_critic))
        if self.mesh is not None:
            return self._init_sharded(actor, critic, k_env, key)
        carry = RolloutCarry(env.reset(k_env), norm_init(env.obs_size),
                             jnp.zeros((env.num_envs,), jnp.float32))
        state = TrainState(actor, critic, self.actor_tx.init(actor), self.critic_tx.init(critic), carry, key,
                           jnp.zeros((), jnp.int32))
        # Committed to the device like the iteration's outputs, so `iteration` compiles once, not twice; and
        # copied, leaf by leaf (may_alias=False): env.reset puts one obs array in two leaves, and a buffer
        # cannot be donated twice to `iterations`.
        return jax.device_put(state, jax.devices()[0], may_alias=False)

    # --- data parallel over a mesh ---------------------------------------------------------------------

    def _specs(self):
        """TrainState's layout over the mesh: env state and episode returns split along envs."""
        rep, split = P(), P(DATA_AXIS)
        return TrainState(rep, rep, rep, rep, RolloutCarry(split, rep, split), rep, rep)

    def _sharded(self, iteration):
        """iteration mapped over the mesh; each device sees its own env key ([1, 2] slice -> [2])."""
        def with_env_key(state: TrainState, key) -> TrainState:
            return state._replace(rollout=state.rollout._replace(env=state.rollout.env._replace(key=key)))

        def local(state: TrainState):
            state, metrics = iteration(with_env_key(state, state.rollout.env.key[0]))
            return with_env_key(state, state.rollout.env.key[None]), metrics

        return jax.shard_map(local, mesh=self.mesh, in_specs=(self._specs(),),
                             out_specs=(self._specs(), P()), check_vma=False)

    def _init_sharded(self, actor, critic, k_env, key) -> TrainState:
        """The replicated parts put on every device; each device resets its own envs with its own key."""
        env, dp = self.env, self.dp

        def reset(k):
            state = env.reset(dp.fold_in(k))
            return RolloutCarry(state._replace(key=state.key[None]), None,
                                jnp.zeros((env.num_envs,), jnp.float32))

        rollout = jax.jit(jax.shard_map(reset, mesh=self.mesh, in_specs=P(),
                                        out_specs=RolloutCarry(P(DATA_AXIS), None, P(DATA_AXIS)),
                                        check_vma=False))(k_env)
        replicated = jax.device_put((actor, critic, self.actor_tx.init(actor), self.critic_tx.init(critic),
                                     norm_init(env.obs_size), key, jnp.zeros((), jnp.int32)),
                                    NamedSharding(self.mesh, P()))
        actor, critic, actor_opt, critic_opt, norm, key, iteration = replicated
        return TrainState(actor, critic, actor_opt, critic_opt, rollout._replace(norm=norm), key, iteration)

    def describe(self) -> dict:
        """Framework facts for the run metadata."""
        devices = self.mesh.devices.tolist() if self.mesh is not None else jax.devices()[:1]
        return {"jax": jax.__version__, "devices": [str(d) for d in devices],
                "world_size": self.dp.world_size,
                "processes": self.processes, "seeds": SEED_SCHEME,
                "algorithm": self.algo.name,
                "precision": describe_jax(self.cfg.precision, self.env.physics_precision)}

    def any_process(self, flag: bool) -> bool:
        if self.processes == 1:
            return flag
        return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))

    @staticmethod
    def to_arrays(state: TrainState) -> dict[str, np.ndarray]:
        return state_to_arrays(state)

    def from_arrays(self, template: TrainState, arrays: dict[str, np.ndarray]) -> TrainState:
        """The checkpoint's state; written on another number of devices (its env keys are one per device),
        the learning state is restored and the episodes start afresh (the envs' split has changed)."""
        saved = arrays.get(".rollout.env.key")
        if saved is not None and saved.shape != template.rollout.env.key.shape:
            def episodes(name):
                return name.startswith(".rollout.env.") or name == ".rollout.ep_return"

            fresh = {k: v for k, v in state_to_arrays(template).items() if episodes(k)}
            arrays = {**{k: v for k, v in arrays.items() if not episodes(k)}, **fresh}
            if jax.process_index() == 0:
                print(f"note: the checkpoint was written on {_devices_of(saved)} device(s), this run has "
                      f"{self.dp.world_size}: networks, optimisers and normaliser resume, episodes start "
                      "afresh")
        return state_from_arrays(template, arrays)

    def evaluate(self, state: TrainState, seed: int, iteration: int) -> EvalResult:
        """Deterministic eval on fresh envs; the key depends only on (seed, iteration): resumable. On a mesh
        it runs on one device of this process, with that device's copy of the (replicated) policy."""
        return eval_result(self._evaluate(*self._policy_params(state), eval_key(seed, iteration)))

    def policy(self, state: TrainState):
        """The deterministic policy `evaluate` plays, as a host function: raw observations [N, O] -> actions
        [N, A] (numpy float32), normalised with `state`'s statistics, frozen."""
        actor, norm = self._policy_params(state)
        return lambda obs: np.asarray(self._act(actor, norm, jnp.asarray(obs, jnp.float32)))

    def _policy_params(self, state: TrainState):
        """(actor, normaliser) on one device: on a mesh, this process's first copy of the replicated ones."""
        actor, norm = state.actor, state.rollout.norm
        if self.mesh is not None:
            actor, norm = jax.tree.map(lambda x: x.addressable_data(0), (actor, norm))
        return actor, norm

    # --- several iterations per dispatch ---------------------------------------------------------------

    def iterations(self, state: TrainState, n: int):
        """n iterations (1 <= n <= k = cfg.iterations_per_dispatch) in one dispatch, with no host round-trip
        between them. Returns (state after n iterations, metrics {name: [k] array}); row i holds iteration
        i's metrics, rows >= n are unused. Read them with `to_host(metrics, n)`.

        `state` is donated: its buffers are reused for the result, so the caller must not use it (nor any
        array it shares a buffer with) afterwards; the leaves are deleted on return.

        One program serves every n: n is a traced int32 and the loop a fori_loop with a dynamic trip count,
        so a dispatch cut short (at an eval or checkpoint boundary) compiles nothing new."""
        k = self.cfg.iterations_per_dispatch
        if not 1 <= n <= k:
            raise ValueError(f"iterations: n={n} must lie in 1..{k} (iterations_per_dispatch)")
        return self._dispatch(state, np.int32(n))

    @staticmethod
    def to_host(metrics: dict, n: int) -> dict[str, np.ndarray]:
        """The first n rows of `iterations`' metrics as numpy [n] arrays, in one device-to-host transfer
        (the one host sync of a dispatch). On several hosts each reads its own copy of the replicated
        metrics."""
        local = {name: v if v.is_fully_addressable else v.addressable_data(0) for name, v in metrics.items()}
        return {name: v[:n] for name, v in jax.device_get(local).items()}

    def _looped(self, iteration):
        """(state, n) -> iteration applied n times, each one's metrics written into row i of [k, ...]
        buffers allocated once (their shapes from jax.eval_shape: tracing only, no compute). On a mesh
        `iteration` is the shard_mapped one: the loop runs around it inside the same jit."""
        k = self.cfg.iterations_per_dispatch

        def looped(state: TrainState, n):
            _, shapes = jax.eval_shape(iteration, state)
            rows = jax.tree.map(lambda s: jnp.zeros((k, *s.shape), s.dtype), shapes)

            def body(i, carry):
                state, rows = carry
                state, metrics = iteration(state)
                return state, jax.tree.map(lambda r, m: r.at[i].set(m), rows, metrics)

            return jax.lax.fori_loop(0, n, body, (state, rows))

        return looped

    # --- the jitted iteration -------------------------------------------------------------------------

    def _iteration(self, state: TrainState):
        cfg, kernels, algo, dp = self.cfg, self.kernels, self.algo, self.dp
        key, k_roll, k_update = jax.random.split(state.key, 3)
        k_roll, k_update = dp.fold_in(k_roll), dp.fold_in(k_update)
        window = {}
        with jax.named_scope("rollout"):
            if algo.window_objective is None:
                carry, data, stats = self._rollout(state.actor, state.critic, state.rollout, k_roll)
            else:
                carry, data, stats, window = self._differentiated_rollout(state, k_roll)
        with jax.named_scope("returns"):
            tgt = algo.targets(data, kernels, cfg)
        with jax.named_scope("update"):
            batch = algo.flat_batch(state.actor, data, tgt, cfg)
            actor, critic, actor_opt, critic_opt, metrics = self._update(state, batch, k_update)
        metrics = reduce_metrics({**metrics, **window}, dp)
        metrics.update(train_metrics(stats, data.reward, tgt.returns, dp))
        return TrainState(actor, critic, actor_opt, critic_opt, carry, key, state.iteration + 1), metrics

    def _rollout(self, actor, critic, carry: RolloutCarry, key, perturbation=None):
        """cfg.num_steps steps of the algorithm's acting and bootstrap around env.step.
        perturbation [T, N, A] or None: added to the actions sent to the env (to differentiate by).
        Returns (carry, transitions [T, N, ...], stats of the episodes that ended).

        On W > 1 devices each updates the normaliser with its own observations while acting, and `seen`
        gathers the statistics of those alone; at the end the start statistics are merged with every
        device's `seen` (norm_pool), so all devices leave with the statistics of all the observations."""
        cfg, kernels, algo, env, dp = self.cfg, self.kernels, self.algo, self.env, self.dp
        env_step = env.step
        if perturbation is not None and cfg.rpo.rpo_remat:
            env_step = jax.checkpoint(env.step)  # the backward pass recomputes the physics of a step
        pooled = cfg.obs_norm and dp.axis is not None

        def step(carry, inputs):
            c, seen = carry
            if pooled:
                seen = norm_update(seen, jax.lax.stop_gradient(c.env.obs))
            k, du = inputs
            noise = algo.step_noise(k, env.num_envs, env.action_size)
            norm, obs, action, acted = algo.act(actor, critic, c.norm, c.env.obs, noise, kernels, cfg)
            env_state, out = env_step(c.env, action if du is None else action + du)
            if cfg.bootstrap_terminations:
                out = bootstrap_terminations(out)
            transition = algo.bootstrap(actor, critic, norm, obs, action, acted, out, noise, kernels, cfg)
            ep_return, stats = episode_stats(c.ep_return, out.reward, out.terminated, out.truncated,
                                             out.nonfinite)
            return (RolloutCarry(env_state, norm, ep_return), seen), (transition, stats)

        seen = norm_init(env.obs_size) if pooled else None
        (end, seen), (data, stats) = jax.lax.scan(step, (carry, seen),
                                                  (jax.random.split(key, cfg.num_steps), perturbation))
        if pooled:
            end = end._replace(norm=norm_merge(carry.norm, norm_pool(seen, dp)))
        return end, data, jax.tree.map(jnp.sum, stats)

    def _differentiated_rollout(self, state: TrainState, key):
        """The rollout with dJ/da of the algorithm's window objective J through the physics: the gradient
        at a zero perturbation u of the actions, filled into data.action_grad. One reverse pass."""
        env = self.env
        # In the env's dtype: a float32 zero would round the float64 gradient of a float64 env to float32.
        zero = jnp.zeros((self.cfg.num_steps, env.num_envs, env.action_size), env.dtype)

        def window(u):
            carry, data, stats = self._rollout(state.actor, state.critic, state.rollout, key, u)
            return self.algo.window_objective(data, self.cfg), (carry, data, stats)

        (objective, (carry, data, stats)), grad = jax.value_and_grad(window, has_aux=True)(zero)
        data = jax.tree.map(jax.lax.stop_gradient, data._replace(action_grad=grad))
        return carry, data, stats, {"train/window_objective": objective / env.num_envs}

    def _update(self, state: TrainState, batch, key):
        cfg, kernels, algo, tx = self.cfg, self.kernels, self.algo, self.tx
        carry = (state.actor, state.critic, state.actor_opt, state.critic_opt)
        if algo.update is not None:
            carry, metrics = algo.update(carry, batch, key, (self.actor_tx, self.critic_tx), kernels, cfg,
                                         self.dp)
            return (*carry, metrics)
        size = jax.tree.leaves(batch)[0].shape[0] // cfg.num_minibatches

        def minibatch(carry, mb, k):
            noise = algo.update_noise(k, size, self.env.action_size, cfg)
            return algo.update_step(carry, mb, noise, tx, kernels, cfg, self.dp)

        carry, metrics = scan_minibatches(minibatch, carry, batch, key, cfg.num_epochs, cfg.num_minibatches,
                                          self.dp)
        return (*carry, metrics)


def deterministic_action(policy_mean, norm, obs, cfg):
    """The action evaluation plays on raw observations obs [N, O]: clip(tanh(mean)) of the policy's mean on
    the normalised observation, with policy_mean(normalised obs [N, O]) -> pre-tanh mean [N, A]."""
    mean = policy_mean(normalize(norm, obs, cfg.obs_norm))
    return jnp.clip(jnp.tanh(mean), -cfg.action_clip, cfg.action_clip)


def evaluate(policy_mean, norm, env, key, cfg):
    """Undiscounted return [N] of one full episode per fresh env, deterministic action tanh(mean), with
    policy_mean(normalised obs [N, O]) -> pre-tanh mean [N, A]; normalisation statistics frozen."""
    def step(c, _):
        env_state, ret, alive = c
        env_state, out = env.step(env_state, deterministic_action(policy_mean, norm, env_state.obs, cfg))
        ret = ret + jnp.where(alive, out.reward, 0.0)
        return (env_state, ret, alive & ~(out.terminated | out.truncated)), None

    state = env.reset(key, random_step_count=False)
    init = (state, jnp.zeros((env.num_envs,), jnp.float32), jnp.ones((env.num_envs,), bool))
    (_, ret, _), _ = jax.lax.scan(step, init, None, length=env.max_episode_steps)
    return ret


def _devices_of(env_key: np.ndarray) -> int:
    """The number of devices a checkpoint's env key ([2], or [W, 2] on a mesh) was written on."""
    return 1 if env_key.ndim == 1 else env_key.shape[0]


def _to_host(leaf) -> np.ndarray:
    """A (possibly sharded, possibly multi-host) array as one numpy array. Collective across processes
    when the array spans hosts: every process must call it."""
    if leaf.is_fully_addressable:
        return np.asarray(leaf)
    if leaf.sharding.is_fully_replicated:
        return np.asarray(leaf.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))


def state_to_arrays(state: TrainState) -> dict[str, np.ndarray]:
    """Flatten the train state to {path: array} for checkpoints (leaf paths are stable names)."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {jax.tree_util.keystr(path): _to_host(leaf) for path, leaf in leaves}


def state_from_arrays(template: TrainState, arrays: dict[str, np.ndarray]) -> TrainState:
    """Inverse of state_to_arrays, checked leaf by leaf against a freshly initialised template."""
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, ref in paths:
        name = jax.tree_util.keystr(path)
        if name not in arrays:
            raise ValueError(f"checkpoint lacks {name}: it was written by a different config or version")
        arr = arrays[name]
        if arr.shape != ref.shape or arr.dtype != ref.dtype:
            raise ValueError(f"checkpoint entry {name} is {arr.dtype}{list(arr.shape)}, expected "
                             f"{ref.dtype}{list(ref.shape)}: the config differs from the checkpoint's")
        if isinstance(ref.sharding, NamedSharding):  # on a mesh: each device (of each host) takes its part
            leaves.append(jax.make_array_from_callback(arr.shape, ref.sharding,
                                                       lambda index, a=arr: a[index]))
        else:
            leaves.append(jnp.asarray(arr))
    return jax.tree_util.tree_unflatten(treedef, leaves)
