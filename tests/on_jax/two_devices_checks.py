"""Data parallelism on two JAX devices. Not collected on its own (the name is not test_*):
test_data_parallel_jax.py runs it in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=2,
since a process's device count is fixed when JAX starts.

The oracle of every equivalence is the single-device computation on the concatenated data: two devices
holding halves of a minibatch must step the parameters exactly as one device holding all of it.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from reppo_fast.checkpoint import list_checkpoints, load_checkpoint
from reppo_fast.config import Config, ConfigError, preset_config, validate_world_size
from reppo_fast.envs import make_env
from reppo_fast.kernels import bind
from reppo_fast.on_jax.common import NormState, norm_init, norm_merge, norm_pool, norm_update, pooled_mean_std
from reppo_fast.on_jax.data_parallel import DATA_AXIS, SINGLE, DataParallel
from reppo_fast.on_jax.trainer import make_optimizer
from reppo_fast.runner import run
from reppo_fast.train import main

pytestmark = pytest.mark.skipif(jax.device_count() < 2, reason="needs 2 JAX devices (run by "
                                "test_data_parallel_jax.py with --xla_force_host_platform_device_count=2)")

DP = DataParallel(2)
KERNELS = bind("jax", "reference")
B = 32  # the global minibatch; each device holds 16 rows


def _mesh():
    return Mesh(np.array(jax.devices()[:2]), (DATA_AXIS,))


def _on_two(fn, in_specs, out_specs):
    return jax.jit(jax.shard_map(fn, mesh=_mesh(), in_specs=in_specs, out_specs=out_specs, check_vma=False))


def _close(got, want, rtol=2e-5, atol=2e-6):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol)


def _differ(got, want, by=1e-4):
    pairs = zip(jax.tree.leaves(got), jax.tree.leaves(want))
    return max(float(jnp.max(jnp.abs(g - w))) for g, w in pairs) > by


def _steps(update_step, carry, minibatches, noises, tx, cfg, dp):
    """Several update steps in a row; returns (carry, the last step's metrics)."""
    metrics = None
    for mb, noise in zip(minibatches, noises):
        carry, metrics = update_step(carry, mb, noise, tx, KERNELS, cfg, dp)
    return carry, metrics


def _reppo_case():
    from reppo_fast.on_jax.reppo import ALGORITHM, nets
    from reppo_fast.on_jax.reppo.losses import Batch

    cfg = Config().replace(actor_hidden=16, critic_hidden=16, num_bins=21, v_min=-10.0, v_max=10.0,
                           kl_samples=4, kl_target=0.05)
    env = make_env("ToyPointMass", num_envs=2)
    keys = jax.random.split(jax.random.PRNGKey(0), 12)
    actor, critic = ALGORITHM.init_networks(cfg, env, KERNELS, (keys[0], keys[1]))
    tx = make_optimizer(cfg)
    minibatches, noises = [], []
    for i in range(3):
        k = jax.random.split(keys[2 + i], 8)
        obs = jax.random.normal(k[0], (B, env.obs_size))
        old_mean, old_log_std = nets.actor_apply(actor["net"], obs)
        old_mean = old_mean + 0.3 * jax.random.normal(k[1], old_mean.shape)  # KLs on both sides of the target
        minibatches.append(Batch(obs, jnp.tanh(jax.random.normal(k[2], (B, env.action_size))),
                                 jax.random.normal(k[3], (B,)), jax.random.uniform(k[4], (B,)) < 0.2,
                                 jax.random.uniform(k[5], (B,)) < 0.2, 3.0 * jax.random.normal(k[6], (B,)),
                                 jax.random.normal(k[7], (B, cfg.critic_hidden)), old_mean, old_log_std))
        noises.append(ALGORITHM.update_noise(keys[6 + i], B, env.action_size, cfg))
    carry = (actor, critic, tx.init(actor), tx.init(critic))
    noise_specs = (P(DATA_AXIS), P(None, DATA_AXIS))  # [B, A] and the KL's [S, B, A]
    return ALGORITHM.update_step, carry, minibatches, noises, tx, cfg, noise_specs


def _ppo_case():
    from reppo_fast.on_jax.ppo import ALGORITHM
    from reppo_fast.on_jax.ppo import networks as nets
    from reppo_fast.on_jax.ppo.losses import PpoBatch, gaussian_log_prob

    cfg = Config().replace(algo="ppo", actor_hidden=16, critic_hidden=16, critic_hidden_blocks=2,
                           normalize_advantage=True, entropy_coef=0.01)
    env = make_env("ToyPointMass", num_envs=2)
    keys = jax.random.split(jax.random.PRNGKey(1), 12)
    actor, critic = ALGORITHM.init_networks(cfg, env, KERNELS, (keys[0], keys[1]))
    tx = make_optimizer(cfg)
    minibatches, noises = [], []
    for i in range(3):
        k = jax.random.split(keys[2 + i], 5)
        obs = jax.random.normal(k[0], (B, env.obs_size))
        mean, log_std = nets.actor_apply(actor, obs)
        raw = mean + jnp.exp(log_std) * jax.random.normal(k[1], mean.shape)
        log_prob = gaussian_log_prob(mean, log_std, raw) + 0.3 * jax.random.normal(k[2], (B,))
        # The two halves' advantages have different means and spreads: normalising each half on its own
        # (what Brax's pmap does) would give other advantages than normalising the whole minibatch.
        scale = jnp.where(jnp.arange(B) < B // 2, 1.0, 4.0)
        advantage = scale * jax.random.normal(k[3], (B,)) + jnp.where(jnp.arange(B) < B // 2, -2.0, 3.0)
        minibatches.append(PpoBatch(obs, raw, log_prob, advantage, jax.random.normal(k[4], (B,))))
        noises.append(ALGORITHM.update_noise(keys[6 + i], B, env.action_size, cfg))
    carry = (actor, critic, tx.init(actor), tx.init(critic))
    return ALGORITHM.update_step, carry, minibatches, noises, tx, cfg, P(DATA_AXIS)


@pytest.mark.parametrize("case", [_reppo_case, _ppo_case], ids=["reppo", "ppo"])
def test_update_steps_on_two_devices_equal_one_device_on_the_whole_minibatch(case):
    update_step, carry, minibatches, noises, tx, cfg, noise_specs = case()
    want, want_metrics = _steps(update_step, carry, minibatches, noises, tx, cfg, SINGLE)

    def two(dp):
        def fn(carry, minibatches, noises):
            carry, metrics = _steps(update_step, carry, minibatches, noises, tx, cfg, dp)
            return carry, jax.tree.map(lambda m: dp.mean(m) if dp.axis else m, metrics)
        return _on_two(fn, (P(), P(DATA_AXIS), [noise_specs] * len(noises)), (P(), P()))

    got, got_metrics = two(DP)(carry, minibatches, noises)
    _close(got, want)
    _close(got_metrics, want_metrics, rtol=1e-4, atol=1e-5)
    # The check can fail: without the averaging, device 0 steps on its half alone and lands elsewhere.
    alone, _ = two(SINGLE)(carry, minibatches, noises)
    assert _differ(alone[:2], want[:2])


def test_rpo_update_on_two_devices_equals_one_device_on_the_whole_batch():
    from reppo_fast.on_jax.rpo import ALGORITHM, make_optimizers
    from reppo_fast.on_jax.rpo import networks as nets
    from reppo_fast.on_jax.rpo.losses import RpoBatch

    # Full-batch epochs: a device's permutation of its half reorders the rows of a mean, nothing else.
    cfg = Config().replace(algo="rpo", actor_hidden=16, critic_hidden=16, critic_hidden_blocks=2,
                           num_epochs=2, num_minibatches=1, rpo_epochs=3, rpo_minibatches=1)
    env = make_env("ToyPointMass", num_envs=2)
    k = jax.random.split(jax.random.PRNGKey(2), 8)
    actor, critic = ALGORITHM.init_networks(cfg, env, KERNELS, (k[0], k[1]))
    obs = jax.random.normal(k[2], (B, env.obs_size))
    mean, log_std = nets.actor_apply(actor, obs)
    z = mean + jnp.exp(log_std) * jax.random.normal(k[3], mean.shape)
    batch = RpoBatch(obs, z, mean, log_std, jax.random.normal(k[4], mean.shape),
                     jax.random.normal(k[5], (B,)), jnp.zeros((B,), jnp.int32))
    txs = make_optimizers(cfg)
    carry = (actor, critic, txs[0].init(actor), txs[1].init(critic))
    want, _ = ALGORITHM.update(carry, batch, k[6], txs, KERNELS, cfg)
    got, _ = _on_two(lambda c, b: ALGORITHM.update(c, b, k[6], txs, KERNELS, cfg, DP),
                     (P(), P(DATA_AXIS)), (P(), P()))(carry, batch)
    _close(got[:2], want[:2], rtol=1e-4, atol=1e-5)


def _float64_stats(chunks):
    x = np.concatenate([np.asarray(c, np.float64).reshape(-1, c.shape[-1]) for c in chunks])
    return x.mean(0), x.var(0), len(x)


def test_normaliser_merged_over_two_devices_equals_the_one_device_statistics():
    k = jax.random.split(jax.random.PRNGKey(3), 2)
    before = 5.0 + 2.0 * jax.random.normal(k[0], (40, 3))
    # [T, N, O]: the two halves of the envs see different observations (offsets), as real envs do.
    obs = jax.random.normal(k[1], (6, 8, 3)) * jnp.array([1.0, 3.0, 0.5]) + jnp.where(
        jnp.arange(8)[None, :, None] < 4, -1.0, 2.0)
    start = norm_update(norm_init(3), before)
    one = start
    for t in range(obs.shape[0]):
        one = norm_update(one, obs[t])

    def per_device(start, obs):
        seen = norm_init(3)
        for t in range(obs.shape[0]):
            seen = norm_update(seen, obs[t])
        return norm_merge(start, norm_pool(seen, DP))

    two = _on_two(per_device, (P(), P(None, DATA_AXIS)), P())(start, obs)
    _close(two, one, rtol=1e-5, atol=1e-5)
    mean, var, count = _float64_stats([before, obs])
    _close(NormState(mean, var, np.float64(count)), two, rtol=1e-5, atol=1e-5)


def test_pooled_mean_std_is_that_of_the_concatenation():
    x = jnp.concatenate([jax.random.normal(jax.random.PRNGKey(4), (16,)) * 0.5 - 3.0,
                         jax.random.normal(jax.random.PRNGKey(5), (16,)) * 4.0 + 10.0])
    mean, std = _on_two(lambda x: pooled_mean_std(x, DP), P(DATA_AXIS), P())(x)
    x64 = np.asarray(x, np.float64)
    np.testing.assert_allclose([float(mean), float(std)], [x64.mean(), x64.std()], rtol=1e-5)


TINY = dict(env="ToyPointMass", num_envs=8, num_steps=8, num_epochs=2, num_minibatches=2, actor_hidden=16,
            critic_hidden=16, num_bins=21, v_min=0.0, v_max=100.0, num_eval_envs=4, eval_interval=2,
            checkpoint_interval=2, progress=False)


def _cfg(tmp_path, name, iterations, **kw):
    return Config().replace(**{**TINY, **kw}, total_steps=iterations * 64, run_dir=str(tmp_path / name))


def _records(path, drop=("time/iteration_s", "time/elapsed_s", "time/env_steps_per_s", "wall_time")):
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in path.read_text().splitlines()]


@pytest.mark.parametrize("algo", ["reppo", "ppo"])
def test_a_two_device_iteration_keeps_the_replicas_identical_and_the_envs_distinct(tmp_path, algo):
    from reppo_fast.runner import _build

    built = _build(_cfg(tmp_path, "a", 2, algo=algo, preset="cpu"))
    trainer = built.trainer
    assert trainer.dp.world_size == 2 and trainer.env.num_envs == 4  # each device steps half the envs
    state = trainer.init_state(0)
    start_count = float(state.rollout.norm.count)
    state, metrics = trainer.iteration(state)
    # Parameters, optimiser state and the merged normaliser are the same on both devices...
    for leaf in jax.tree.leaves((state.actor, state.critic, state.actor_opt, state.critic_opt,
                                 state.rollout.norm)):
        shards = [np.asarray(s.data) for s in leaf.addressable_shards]
        np.testing.assert_array_equal(shards[0], shards[1])
    # ...which counted every device's observations (T steps of num_envs envs)...
    assert float(state.rollout.norm.count) == start_count + 8 * 8
    # ...while the two devices' envs were reset with different keys and act on different observations.
    obs = [np.asarray(s.data) for s in state.rollout.env.obs.addressable_shards]
    assert obs[0].shape == (4, 4) and not np.allclose(obs[0], obs[1])
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert 0 <= float(metrics["train/episodes"]) <= 8 * 8


def test_two_device_iterations_in_one_dispatch_equal_one_iteration_per_dispatch(tmp_path):
    """Trainer.iterations on the mesh (the fori_loop around the shard_mapped iteration, in one jit) against
    the mesh's `iteration` dispatched once per iteration: bit for bit, with the same shardings."""
    from reppo_fast.runner import _build

    trainer = _build(_cfg(tmp_path, "a", 3, preset="cpu", iterations_per_dispatch=2)).trainer
    want_state, want = trainer.init_state(0), []
    for _ in range(3):
        want_state, metrics = trainer.iteration(want_state)
        want.append(jax.device_get(metrics))
    state, got = trainer.init_state(0), []
    for n in (2, 1):
        passed = state
        state, metrics = trainer.iterations(state, n)
        assert all(leaf.is_deleted() for leaf in jax.tree.leaves(passed))  # donated
        rows = trainer.to_host(metrics, n)
        got += [{name: v[i] for name, v in rows.items()} for i in range(n)]
    assert trainer._dispatch._cache_size() == 1
    for w, g in zip(jax.tree.leaves(want_state), jax.tree.leaves(state)):
        assert g.sharding == w.sharding
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    for w, g in zip(want, got):
        assert g.keys() == w.keys()
        for name in w:
            np.testing.assert_array_equal(g[name], w[name], err_msg=name)


def test_a_two_device_run_resumes_exactly(tmp_path):
    full = run(_cfg(tmp_path, "full", 6))
    part = run(_cfg(tmp_path, "part", 3))
    assert main(["--resume", str(part), "--total-steps", str(6 * 64), "--no-progress"]) == 0
    assert _records(part / "metrics.jsonl") == _records(full / "metrics.jsonl")
    want, _ = load_checkpoint(list_checkpoints(full / "checkpoints")[-1])
    got, _ = load_checkpoint(list_checkpoints(part / "checkpoints")[-1])
    assert want.keys() == got.keys() and want[".rollout.env.key"].shape == (2, 2)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_run_resumes_on_another_device_count_with_fresh_episodes(tmp_path, capsys):
    part = run(_cfg(tmp_path, "part", 2))
    assert main(["--resume", str(part), "--total-steps", str(4 * 64), "--devices", "1", "--no-progress"]) == 0
    assert "written on 2 device(s), this run has 1" in capsys.readouterr().out
    arrays, meta = load_checkpoint(list_checkpoints(part / "checkpoints")[-1])
    assert meta["iteration"] == 4 and arrays[".rollout.env.key"].shape == (2,)


def test_an_env_count_that_does_not_split_is_refused(tmp_path, capsys):
    argv = ["--env", "ToyPointMass", "--preset", "cpu", "--num-envs", "7", "--num-minibatches", "1",
            "--run-dir", str(tmp_path / "a"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "num_envs=7 does not split over 2 devices (--devices)" in err and len(err.splitlines()) == 1
    with pytest.raises(ConfigError, match="num_minibatches=3 must divide each device's share"):
        validate_world_size(_cfg(tmp_path, "b", 2, num_minibatches=3), 2, "--devices")


@pytest.mark.slow
def test_cartpole_balance_learns_on_two_devices_like_on_one(tmp_path):
    """The one-device learning test's threshold (on_jax/test_learning.py), same preset and seeds."""
    tried = {}
    for seed in range(3):
        cfg = preset_config("cpu", "dmc", env="CartpoleBalance", run_dir=str(tmp_path / f"cartpole{seed}"),
                            progress=False, seed=seed)
        run_dir = run(cfg)
        assert json.loads((run_dir / "meta.json").read_text())["world_size"] == 2
        tried[seed] = [e["eval/return"] for e in _records(run_dir / "eval.jsonl")]
        if max(tried[seed]) >= 900:
            return
    raise AssertionError(f"no seed reached an eval return of 900 on two devices: {tried}")


def test_a_step_non_finite_on_one_device_is_skipped_on_both():
    """Replicas stay equal: device 0's own step was finite, but device 1's loss was NaN, so both keep the old
    state. Each device deciding alone (SINGLE) would split them: the check can fail."""
    from reppo_fast.on_jax.common import keep_if_finite

    def on_two(dp):
        def local(old, new, bad):
            carry, skipped = keep_if_finite(old, new, {"loss": jnp.where(bad[0], jnp.nan, 0.5)}, dp)
            return carry[None], skipped[None]
        return _on_two(local, (P(), P(), P(DATA_AXIS)), (P(DATA_AXIS), P(DATA_AXIS)))

    old, new, bad = jnp.zeros(3), jnp.ones(3), jnp.array([False, True])
    carry, skipped = on_two(DP)(old, new, bad)
    np.testing.assert_array_equal(np.asarray(carry), np.zeros((2, 3)))
    assert np.asarray(skipped).tolist() == [True, True]
    carry, skipped = on_two(SINGLE)(old, new, bad)
    assert np.asarray(skipped).tolist() == [False, True] and np.asarray(carry)[0].tolist() == [1.0, 1.0, 1.0]
