"""Issue 16, items 1-2: blown-up physics never reaches the train state. Fault-injecting raw envs (test doubles
around ToyPointMass) corrupt a share of env steps with NaN/inf in qpos, qvel, obs or reward, or with huge but
finite observations; the env contract must count every one (train/nonfinite), reset the env, and keep every
parameter, optimiser moment, normaliser statistic and multiplier finite, over 200 iterations of REPPO and PPO
on both frameworks."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reppo_fast.config import Config
from reppo_fast.envs.contract_jax import VecEnv
from reppo_fast.envs.contract_torch import BatchedContract
from reppo_fast.envs.toy_jax import ToyPointMass
from reppo_fast.envs.toy_torch import ToyPointMassTorch
from reppo_fast.kernels import bind
from reppo_fast.runner import algorithm

RATE = 0.05
TINY = dict(env="ToyPointMass", num_envs=16, num_steps=8, num_epochs=2, num_minibatches=2, actor_hidden=16,
            actor_hidden_blocks=1, critic_hidden=16, critic_hidden_blocks=1, num_bins=21, v_min=0.0,
            v_max=100.0, num_eval_envs=2, episode_length=50, progress=False, seed=1)
# What a fault puts in the part it corrupts: NaN in qpos, +inf in qvel, NaN in obs, -inf in the reward.
FAULTS = ((0, "qpos", np.nan), (1, "qvel", np.inf), (2, "obs", np.nan), (3, "reward", -np.inf))


class FaultyToyJax:
    """ToyPointMass (single-env raw API) whose steps are corrupted at `rate`, chosen by a hash of the action
    and the observation (the raw API has no key); `huge` instead scales the observation by it (finite).
    `injected` counts the corrupted steps on the host (a locked callback: jit may run callbacks on
    several threads)."""

    def __init__(self, rate: float, huge: float | None = None):
        self.raw, self.rate, self.huge = ToyPointMass(), rate, huge
        self.action_size, self.observation_size = self.raw.action_size, self.raw.observation_size
        self.injected, self._lock = 0, threading.Lock()

    def _count(self, hit) -> None:
        with self._lock:
            self.injected += int(np.sum(hit))

    def reset(self, key):
        return self.raw.reset(key)

    def step(self, state, action):
        out = self.raw.step(state, action)
        seed = jnp.sum(action * jnp.arange(1.0, 1.0 + action.shape[-1])) + 0.37 * jnp.sum(state.obs)
        u = jnp.mod(jnp.sin(seed * 12.9898) * 43758.5453, 1.0)  # a hash of the step, uniform enough
        hit = u < self.rate
        jax.debug.callback(self._count, hit)
        if self.huge is not None:
            return out._replace(obs=jnp.where(hit, out.obs * self.huge + self.huge, out.obs))
        kind = jnp.floor(u / self.rate * 4)  # which part, given a hit

        def spoil(x, k, value):
            return jnp.where(hit & (kind == k), value, x)

        parts = {name: spoil(getattr(out.data if name in ("qpos", "qvel") else out, name), k, v)
                 for k, name, v in FAULTS}
        data = out.data._replace(qpos=parts["qpos"], qvel=parts["qvel"])
        return out._replace(data=data, obs=parts["obs"], reward=parts["reward"])


class FaultyToyTorch:
    """ToyPointMassTorch (batched raw API) whose env steps are corrupted at `rate` (drawn from its own
    generator); `huge` as in FaultyToyJax. `injected` counts the corrupted env steps."""

    def __init__(self, num_envs: int, rate: float, huge: float | None = None):
        self.raw, self.rate, self.huge = ToyPointMassTorch(num_envs, device="cpu"), rate, huge
        self.num_envs, self.device = num_envs, self.raw.device
        self.action_size, self.observation_size = self.raw.action_size, self.raw.observation_size
        self.injected, self._gen = 0, torch.Generator().manual_seed(7)

    def reset(self, generator=None, **kw):
        return self.raw.reset(generator, **kw)

    def step(self, state, action):
        out = self.raw.step(state, action)
        hit = torch.rand(self.num_envs, generator=self._gen) < self.rate
        self.injected += int(hit.sum())
        if self.huge is not None:
            return out._replace(obs=torch.where(hit[:, None], out.obs * self.huge + self.huge, out.obs))
        kind = torch.randint(0, 4, (self.num_envs,), generator=self._gen)

        def spoil(x, k, value):
            mask = (hit & (kind == k)).view(-1, *([1] * (x.ndim - 1)))
            return torch.where(mask, torch.full_like(x, value), x)

        parts = {name: spoil(getattr(out.data if name in ("qpos", "qvel") else out, name), k, v)
                 for k, name, v in FAULTS}
        data = out.data._replace(qpos=parts["qpos"], qvel=parts["qvel"])
        return out._replace(data=data, obs=parts["obs"], reward=parts["reward"])


def _trainer(framework: str, algo: str, cfg: Config, raw):
    if framework == "jax":
        from reppo_fast.on_jax.trainer import Trainer

        env = VecEnv(raw, num_envs=cfg.num_envs, max_episode_steps=50, name="ToyPointMass",
                     obs_limit=cfg.obs_limit)
        return Trainer(cfg, env, env, bind("jax", "reference"), algorithm("jax", algo))
    from reppo_fast.on_torch.trainer import Trainer

    env = BatchedContract(raw, max_episode_steps=50, name="ToyPointMass", obs_limit=cfg.obs_limit)
    return Trainer(cfg, env, env, bind("torch", "reference"), algorithm("torch", algo), torch.device("cpu"))


def _train(framework: str, algo: str, iterations: int, rate: float, huge: float | None = None, **fields):
    cfg = Config().replace(**TINY, algo=algo, framework=framework, **fields)
    raw = (FaultyToyJax(rate, huge) if framework == "jax" else FaultyToyTorch(cfg.num_envs, rate, huge))
    trainer = _trainer(framework, algo, cfg, raw)
    state = trainer.init_state(cfg.seed)
    logged = []
    for _ in range(iterations):
        state, metrics = trainer.iteration(state)
        logged.append({k: float(v) for k, v in metrics.items()})
    jax.effects_barrier()
    return trainer.to_arrays(state), logged, raw.injected


@pytest.mark.parametrize("algo", ["reppo", "ppo"])
@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_a_nan_storm_in_the_physics_never_reaches_the_train_state(framework, algo):
    arrays, logged, injected = _train(framework, algo, 200, RATE)
    steps = 200 * TINY["num_envs"] * TINY["num_steps"]
    assert 0.03 * steps < injected < 0.07 * steps  # the double really storms
    assert sum(m["train/nonfinite"] for m in logged) == injected
    bad = [name for name, a in arrays.items() if a.dtype.kind == "f" and not np.all(np.isfinite(a))]
    assert not bad, bad
    # The contract sanitised every fault before training saw it: the update guard had nothing to skip.
    assert sum(m["update/skipped_steps"] for m in logged) == 0
    assert all(np.isfinite(v) for m in logged for v in m.values())
    for part in ("opt", "norm.mean", "norm.var"):  # the state checked holds these (and REPPO's multipliers)
        assert any(part in name for name in arrays), part
    if algo == "reppo":
        assert any("log_alpha" in name for name in arrays) and any("log_beta" in name for name in arrays)


def _norm_var(arrays) -> np.ndarray:
    return next(a for name, a in arrays.items() if name.endswith("norm.var"))


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_huge_finite_observations_count_as_blown_up_physics_and_spare_the_normaliser(framework):
    """One observation in a hundred is 1e8 times too big (finite): beyond obs_limit, it is counted and reset
    like a NaN, and the normaliser keeps the toy's variance (positions and velocities of order 1). Without
    the limit the same faults poison it: the variance is enormous for the rest of the run."""
    guarded, logged, injected = _train(framework, "reppo", 20, 0.01, huge=1e8)
    assert injected > 0 and sum(m["train/nonfinite"] for m in logged) == injected
    assert np.max(_norm_var(guarded)) < 10.0
    poisoned, logged, injected = _train(framework, "reppo", 20, 0.01, huge=1e8, obs_limit=float("inf"))
    assert injected > 0 and sum(m["train/nonfinite"] for m in logged) == 0
    assert np.max(_norm_var(poisoned)) > 1e8
