"""Issue 16, item 3: a diverging update never reaches the train state. A minibatch step whose loss, gradient
or update is non-finite is skipped on the device (parameters and optimiser state unchanged) and counted; a run
whose every step of max_skipped_iterations iterations in a row was skipped stops, naming the last good
checkpoint. The oracle for the device-side skip is a host loop that runs the same steps one by one and
throws away, with a Python `if`, every step whose result is not finite."""

import copy
import json

import jax
import jax.experimental  # io_callback
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reppo_fast.algorithm import APPLIED_STEPS, SKIPPED_STEPS
from reppo_fast.config import Config
from reppo_fast.envs import make_env, make_torch_env
from reppo_fast.kernels import bind
from reppo_fast.on_torch.data_parallel import SINGLE as TORCH_SINGLE
from reppo_fast.profiling import NO_RANGES
from reppo_fast.runner import algorithm
from reppo_fast.train import main

TINY = dict(env="ToyPointMass", num_envs=16, num_steps=8, num_epochs=2, num_minibatches=8, actor_hidden=16,
            actor_hidden_blocks=1, critic_hidden=16, critic_hidden_blocks=1, num_bins=21, v_min=0.0,
            v_max=100.0, num_eval_envs=2, episode_length=50, progress=False, seed=2)
STEPS = TINY["num_epochs"] * TINY["num_minibatches"]


def _finite(tree) -> bool:
    return all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(tree)
               if np.asarray(x).dtype.kind == "f")


def _poison_rows(batch, rows, nan):
    """The batch with every float field NaN in `rows` (its loss, and so its gradients, become NaN)."""
    def floating(x) -> bool:
        if isinstance(x, torch.Tensor):
            return x.dtype.is_floating_point
        return jnp.issubdtype(x.dtype, jnp.floating)

    return type(batch)(*(nan(x, rows) if floating(x) else x for x in batch))


# --- JAX ------------------------------------------------------------------------------------------------

def _jax_case(algo):
    from reppo_fast.on_jax.trainer import Trainer

    cfg = Config().replace(**TINY, algo=algo)
    env = make_env("ToyPointMass", num_envs=cfg.num_envs, episode_length=50)
    trainer = Trainer(cfg, env, env, bind("jax", "reference"), algorithm("jax", algo))
    state = trainer.init_state(cfg.seed)
    _, data, _ = trainer._rollout(state.actor, state.critic, state.rollout, jax.random.PRNGKey(5))
    batch = trainer.algo.flat_batch(state.actor, data, trainer.algo.targets(data, trainer.kernels, cfg), cfg)
    return trainer, state, batch


def _jax_nan(x, rows):
    return x.at[rows].set(jnp.nan)


def _jax_host_loop(trainer, state, batch, key):
    """The update phase step by step, each step kept only if everything it returns is finite."""
    cfg, algo = trainer.cfg, trainer.algo
    num = batch[0].shape[0]
    size = num // cfg.num_minibatches
    def one(c, mb, k):
        noise = algo.update_noise(k, size, trainer.env.action_size, cfg)
        return algo.update_step(c, mb, noise, trainer.tx, trainer.kernels, cfg)

    step = jax.jit(one)
    carry, skipped = (state.actor, state.critic, state.actor_opt, state.critic_opt), 0
    for k in jax.random.split(key, cfg.num_epochs):
        k_perm, k_mb = jax.random.split(k)
        perm = jax.random.permutation(k_perm, num).reshape(cfg.num_minibatches, size)
        for idx, k_step in zip(perm, jax.random.split(k_mb, cfg.num_minibatches)):
            new, metrics = step(carry, jax.tree.map(lambda x: x[idx], batch), k_step)
            if _finite((new, metrics)):
                carry = new
            else:
                skipped += 1
    return carry, skipped


@pytest.mark.parametrize("algo", ["reppo", "ppo"])
def test_jax_a_wholly_non_finite_update_phase_leaves_the_state_bit_for_bit(algo):
    trainer, state, batch = _jax_case(algo)
    bad = _poison_rows(batch, np.arange(batch[0].shape[0]), _jax_nan)
    *carry, metrics = jax.jit(trainer._update)(state, bad, jax.random.PRNGKey(1))
    before = (state.actor, state.critic, state.actor_opt, state.critic_opt)
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(before)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(metrics[SKIPPED_STEPS]) == STEPS and float(metrics[APPLIED_STEPS]) == 0
    losses = [k for k in metrics if k.endswith("loss")]
    assert losses and all(np.isnan(float(metrics[k])) for k in losses)  # no applied step to average


def test_jax_skips_exactly_the_steps_a_host_loop_throws_away():
    trainer, state, batch = _jax_case("reppo")
    bad = _poison_rows(batch, np.array([3, 70, 101]), _jax_nan)  # three rows: a few minibatches per epoch
    key = jax.random.PRNGKey(1)
    *carry, metrics = jax.jit(trainer._update)(state, bad, key)
    want, skipped = _jax_host_loop(trainer, state, bad, key)
    assert 0 < skipped < STEPS
    assert float(metrics[SKIPPED_STEPS]) == skipped and float(metrics[APPLIED_STEPS]) == STEPS - skipped
    assert _finite(carry)
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert np.isfinite(float(metrics["critic/loss"]))  # the mean over the applied steps


# --- torch ----------------------------------------------------------------------------------------------

def _torch_case(algo):
    from reppo_fast.on_torch.trainer import Trainer

    cfg = Config().replace(**TINY, algo=algo, framework="torch")
    env = make_torch_env("ToyPointMass", num_envs=cfg.num_envs, episode_length=50, device="cpu")
    trainer = Trainer(cfg, env, env, bind("torch", "reference"), algorithm("torch", algo),
                      torch.device("cpu"))
    state = trainer.init_state(cfg.seed)
    _, data, _ = trainer._rollout(state.actor, state.critic, state.rollout, state.generator)
    batch = trainer.algo.flat_batch(state.actor, data, trainer.algo.targets(data, trainer.kernels, cfg), cfg)
    return trainer, state, batch


def _torch_nan(x, rows):
    x = x.clone()
    x[torch.as_tensor(rows)] = torch.nan
    return x


def _torch_tensors(state):
    return [t.detach().clone() for m in (state.actor, state.critic) for t in m.parameters()] + \
        [v.clone() for opt in (state.actor_opt, state.critic_opt) for s in opt.state.values()
         for v in s.values() if isinstance(v, torch.Tensor)]


def _torch_host_loop(trainer, state, batch):
    from reppo_fast.on_torch.common import minibatches

    cfg, algo = trainer.cfg, trainer.algo
    size = batch[0].shape[0] // cfg.num_minibatches
    skipped = 0
    for mb in minibatches(batch, cfg.num_epochs, cfg.num_minibatches, state.generator):
        noise = algo.update_noise(state.generator, size, trainer.env.action_size, cfg)
        saved = copy.deepcopy([m.state_dict() for m in (state.actor, state.critic, state.actor_opt,
                                                         state.critic_opt)])
        metrics = algo.update_step(state, mb, noise, trainer.kernels, cfg, NO_RANGES, TORCH_SINGLE)
        if not (_finite([t.detach().numpy() for t in metrics.values()])
                and _finite([t.numpy() for t in _torch_tensors(state)])):
            for m, s in zip((state.actor, state.critic, state.actor_opt, state.critic_opt), saved):
                m.load_state_dict(s)
            skipped += 1
    return skipped


@pytest.mark.parametrize("algo", ["reppo", "ppo"])
def test_torch_a_wholly_non_finite_update_phase_leaves_the_state_bit_for_bit(algo):
    trainer, state, batch = _torch_case(algo)
    before = _torch_tensors(state)
    metrics = trainer._update(state, _poison_rows(batch, np.arange(batch[0].shape[0]), _torch_nan))
    after = _torch_tensors(state)
    # Adam made its state during the skipped steps: it is Adam's initial state (zeros), as if never stepped.
    assert all(torch.equal(a, b) for a, b in zip(after, before))
    assert all(torch.count_nonzero(t) == 0 for t in after[len(before):])
    assert float(metrics[SKIPPED_STEPS]) == STEPS and float(metrics[APPLIED_STEPS]) == 0


def test_torch_skips_exactly_the_steps_a_host_loop_throws_away():
    trainer, state, batch = _torch_case("reppo")
    bad = _poison_rows(batch, np.array([3, 70, 101]), _torch_nan)
    oracle_trainer, oracle_state, _ = _torch_case("reppo")
    oracle_state.generator.set_state(state.generator.get_state())
    metrics = trainer._update(state, bad)
    skipped = _torch_host_loop(oracle_trainer, oracle_state, bad)
    assert 0 < skipped < STEPS
    assert float(metrics[SKIPPED_STEPS]) == skipped and float(metrics[APPLIED_STEPS]) == STEPS - skipped
    got, want = _torch_tensors(state), _torch_tensors(oracle_state)
    assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want))


# --- the run stops -------------------------------------------------------------------------------------

def _poisoned(framework: str, after_calls: int):
    """The REPPO algorithm with its minibatches NaN after `after_calls` update steps (a host counter)."""
    algo = algorithm(framework, "reppo")
    calls = [0]

    if framework == "torch":
        def update_step(state, mb, *args):
            calls[0] += 1
            if calls[0] > after_calls:
                mb = _poison_rows(mb, np.arange(mb[0].shape[0]), _torch_nan)
            return algo.update_step(state, mb, *args)
    else:
        def update_step(carry, mb, *args):
            def count():
                calls[0] += 1
                return np.float32(calls[0] > after_calls)

            on = jax.experimental.io_callback(count, jax.ShapeDtypeStruct((), jnp.float32), ordered=True)
            mb = type(mb)(*(jnp.where(on > 0, jnp.nan, x) if jnp.issubdtype(x.dtype, jnp.floating) else x
                            for x in mb))
            return algo.update_step(carry, mb, *args)
    return algo._replace(update_step=update_step)


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_a_run_whose_updates_all_diverge_stops_naming_the_last_good_checkpoint(framework, tmp_path,
                                                                              monkeypatch, capsys):
    from reppo_fast import runner

    monkeypatch.setattr(runner, "algorithm", lambda fw, name: _poisoned(fw, 3 * STEPS))
    run_dir = tmp_path / "run"
    flags = ["--env", "ToyPointMass", "--framework", framework, "--run-dir", str(run_dir), "--no-progress",
             "--num-envs", "16", "--num-steps", "8", "--num-epochs", "2", "--num-minibatches", "8",
             "--actor-hidden", "16", "--critic-hidden", "16", "--num-bins", "21", "--num-eval-envs", "2",
             "--eval-interval", "100", "--checkpoint-interval", "2", "--max-skipped-iterations", "3",
             "--total-steps", str(20 * 128)]
    assert main(flags) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: training diverged"), err
    # Iterations 4-6 skipped every step: the networks are iteration 3's; the last checkpoint before is 2's.
    assert "iterations 4-6" in err[0] and "ckpt_00000002.npz" in err[0] and "Traceback" not in err[0]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r[SKIPPED_STEPS] for r in rows] == [0, 0, 0, STEPS, STEPS, STEPS]
    from reppo_fast.checkpoint import list_checkpoints, load_checkpoint

    for path in list_checkpoints(run_dir / "checkpoints"):  # 2, 4, 6: all finite
        assert _finite(list(load_checkpoint(path)[0].values())), path
