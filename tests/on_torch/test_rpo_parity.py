"""RPO is one algorithm on both paths: from the same parameters (load_jax_params), env state and noise, the
torch trainer's differentiated window (the JAX physics driven through envs/jax_autograd.py) gives the JAX
trainer's window objective J, transitions and action-gradients dJ/da, leaves the env in the same state, and
the first actor step's gradient and the critic loss built on them agree. On ToyPointMass and CartpoleSwingup
with episodes shorter than the window, so time limits, auto-resets and their gradient cut are inside it.

The JAX trainer is the oracle for the torch one; the JAX side is itself checked against finite
differences and hand computations in tests/on_jax."""

import functools

import jax
import numpy as np
import pytest
import torch

from reppo_fast.config import Config
from reppo_fast.envs import make_env
from reppo_fast.envs.playground_torch import PlaygroundTorchEnv
from reppo_fast.kernels import bind
from reppo_fast.on_jax import rpo as jax_rpo
from reppo_fast.on_jax.rpo import losses as jl
from reppo_fast.on_jax.rpo import networks as jn
from reppo_fast.on_jax.trainer import Trainer as JaxTrainer
from reppo_fast.on_torch import rpo as torch_rpo
from reppo_fast.on_torch.rpo import losses as tl
from reppo_fast.on_torch.rpo import networks as tn
from reppo_fast.on_torch.trainer import Trainer as TorchTrainer
from reppo_fast.profiling import NO_RANGES

pytestmark = [pytest.mark.usefixtures("float32_matmuls"), pytest.mark.xdist_group("rpo_parity")]

# env: (N, T, episode length in physics steps, remat): every env hits its time limit inside the window.
# Cartpole runs without remat only to compile faster (the bridge recomputes the physics alike either way:
# test_rpo_bridge.py).
CASES = {"ToyPointMass": (4, 8, 5, True), "CartpoleSwingup": (2, 6, 4, False)}
RTOL = 1e-5  # float32 on both sides; the measured gaps are below 1e-5 of each field's largest value
GRAD_TOL = 5e-5  # dJ/da through the physics: measured up to 1e-5 of the largest gradient (Cartpole)


def _cfg(env, n, t, remat):
    return Config().replace(env=env, algo="rpo", num_envs=n, num_steps=t, num_epochs=2, num_minibatches=2,
                            actor_hidden=16, actor_hidden_blocks=2, critic_hidden=16, critic_hidden_blocks=2,
                            gamma=0.9, lmbda=0.8, precision="float32", rpo_remat=remat)


def _replay(noise):
    """torch RPO whose step noise is the JAX rollout's, draw by draw."""
    draws = iter(noise)
    return torch_rpo.ALGORITHM._replace(step_noise=lambda generator, n, a: next(draws))


def _windows(env_name):
    """Both trainers' differentiated windows from the same state: (cfg, JAX (state, data, window, env
    state reached), torch (state, data, window, env state reached))."""
    n, t, episode, remat = CASES[env_name]
    cfg = _cfg(env_name, n, t, remat)
    j_env = make_env(env_name, num_envs=n, episode_length=episode)
    j_trainer = JaxTrainer(cfg, j_env, j_env, bind("jax", "reference"), jax_rpo.ALGORITHM)
    j_state = j_trainer.init_state(0)
    k_roll = jax.random.split(j_state.key, 3)[1]  # the iteration's rollout key
    carry, j_data, _, j_window = jax.jit(j_trainer._differentiated_rollout)(j_state, k_roll)
    noise = [torch.tensor(np.asarray(jax_rpo.step_noise(k, n, j_env.action_size)))
             for k in jax.random.split(k_roll, t)]

    t_env = PlaygroundTorchEnv(make_env(env_name, num_envs=n, episode_length=episode), device="cpu")
    t_trainer = TorchTrainer(cfg.replace(framework="torch"), t_env, t_env, bind("torch", "reference"),
                             _replay(noise), torch.device("cpu"))
    t_state = t_trainer.init_state(0)
    t_env.jax_state = j_state.rollout.env
    tn.load_jax_params(t_state.actor, j_state.actor, t_state.critic, j_state.critic)
    _, t_data, _, t_window = t_trainer._differentiated_rollout(t_state)
    return cfg, (j_state, j_data, j_window, carry.env), (t_state, t_data, t_window, t_env.jax_state)


@functools.cache
def _windows_once(env_name):
    """_windows, computed once per env: a module fixture that pytest-xdist tears down between two of its
    tests (its worker ran out of queued items) would otherwise build Cartpole's windows twice, ~100 s each.
    The tests share one result in their order either way."""
    return _windows(env_name)


@pytest.fixture(scope="module", params=list(CASES))
def windows(request):
    return _windows_once(request.param)


def _close(actual, expected, rtol=RTOL, atol=0.0):
    actual = actual.detach().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    np.testing.assert_allclose(actual, np.asarray(expected), rtol=rtol, atol=atol)


def _scale(x):
    """The largest magnitude in x (0 if empty)."""
    return float(np.max(np.abs(np.asarray(x)), initial=0.0))


@pytest.mark.parametrize("std", ["state_independent", "state_dependent"])
def test_networks_agree_after_load_jax_params(std):
    """Policy (mean, log std) and the C online and target critics' values, for both std forms, from the
    same fresh init; a fresh torch init has JAX's starting log std."""
    o, a, c, hidden = 5, 3, 2, 16
    k_actor, k_critic, k_obs = jax.random.split(jax.random.PRNGKey(0), 3)
    j_actor = jn.init_actor(k_actor, o, a, hidden, 2, std, -0.7)
    j_critics = jn.init_critics(k_critic, o, hidden, 3, c)
    j_critics["target"] = jax.tree.map(lambda x: 1.1 * x + 0.01, j_critics["target"])  # apart from online
    t_actor, t_critics = tn.init_actor(o, a, hidden, 2, std, -0.7), tn.init_critics(o, hidden, 3, c)
    with torch.no_grad():
        _close(tn.actor_apply(t_actor, torch.zeros(4, o))[1], np.full((4, a), -0.7), atol=1e-6)
    tn.load_jax_params(t_actor, j_actor, t_critics, j_critics)
    obs = jax.random.normal(k_obs, (7, o))
    with torch.no_grad():
        t_out = (*tn.actor_apply(t_actor, torch.tensor(np.asarray(obs))),
                 tn.values(t_critics.online, torch.tensor(np.asarray(obs))),
                 tn.values(t_critics.target, torch.tensor(np.asarray(obs))))
    j_out = (*jn.actor_apply(j_actor, obs), jn.values(j_critics["online"], obs),
             jn.values(j_critics["target"], obs))
    assert t_out[2].shape == (c, 7)
    for t, j in zip(t_out, j_out, strict=True):
        _close(t, j, atol=RTOL * _scale(j))
    assert {n for n, _ in t_critics.named_parameters()} == {f"online.{n}" for n, _ in
                                                           t_critics.online.named_parameters()}


def test_window_transitions_objective_and_action_gradients_agree(windows):
    cfg, (_, j_data, j_window, _), (_, t_data, t_window, _) = windows
    for field in ("terminated", "truncated"):
        assert np.array_equal(getattr(t_data, field).numpy(), np.asarray(getattr(j_data, field))), field
    assert bool(np.asarray(j_data.truncated).any())  # a time limit, and so an auto-reset, inside the window
    for field in ("obs", "z", "mean_old", "log_std_old", "reward", "next_value"):
        value = np.asarray(getattr(j_data, field))
        _close(getattr(t_data, field), value, atol=RTOL * _scale(value))
    _close(t_window["train/window_objective"], j_window["train/window_objective"])
    grad = np.asarray(j_data.action_grad)
    assert _scale(grad) > 0.0 and np.isfinite(grad).all()
    _close(t_data.action_grad, grad, rtol=GRAD_TOL, atol=GRAD_TOL * _scale(grad))


def test_the_env_state_reached_is_written_back(windows):
    _, (*_, j_env_state), (*_, t_env_state) = windows
    for j, t in zip(jax.tree.leaves(j_env_state), jax.tree.leaves(t_env_state), strict=True):
        if np.issubdtype(j.dtype, np.floating):
            _close(t, j, atol=RTOL * max(_scale(j), 1.0))
        else:
            assert np.array_equal(np.asarray(t), np.asarray(j))


def test_first_actor_gradient_and_critic_loss_agree(windows):
    """The first update step's actor gradient (at theta = theta_old: the SHAC gradient) and critic loss,
    each side on its own window's batch."""
    cfg, (j_state, j_data, *_), (t_state, t_data, *_) = windows
    j_tgt = jax_rpo.targets(j_data, bind("jax", "reference"), cfg)
    j_batch = jax_rpo.flat_batch(j_state.actor, j_data, j_tgt, cfg)
    t_tgt = torch_rpo.targets(t_data, bind("torch", "reference"), cfg)
    t_batch = torch_rpo.flat_batch(t_state.actor, t_data, t_tgt, cfg)
    grad = j_batch.action_grad
    _close(t_batch.action_grad, grad, rtol=GRAD_TOL, atol=GRAD_TOL * _scale(grad))
    _close(t_batch.returns, j_batch.returns, atol=RTOL * _scale(j_batch.returns))

    loss_and_grad = jax.value_and_grad(jl.actor_loss, has_aux=True)
    (j_loss, j_metrics), j_grad = loss_and_grad(j_state.actor, j_batch, cfg.rpo)
    t_loss, t_metrics = tl.actor_loss(t_state.actor, t_batch, cfg.rpo)
    t_loss.backward()
    assert set(t_metrics) == set(j_metrics)
    for key in j_metrics:
        _close(t_metrics[key], j_metrics[key], atol=1e-6)
    _close(t_loss, j_loss, atol=1e-7)
    net, j_net = t_state.actor.net, j_grad["net"]
    pairs = [(t_state.actor.log_std.grad, j_grad["log_std"]), (net.out.weight.grad.T, j_net["out"]["w"]),
             (net.out.bias.grad, j_net["out"]["b"])]
    for block, g in zip(net.blocks, j_net["blocks"], strict=True):
        pairs += [(block.linear.weight.grad.T, g["linear"]["w"]), (block.linear.bias.grad, g["linear"]["b"]),
                  (block.norm.weight.grad, g["norm"]["scale"]), (block.norm.bias.grad, g["norm"]["bias"])]
    # One relative error over the whole gradient: the action-gradients' float32 gap (above) reaches every
    # parameter, and small ones (a LayerNorm scale's) would make a per-array ratio noisy.
    diff = np.concatenate([(t.numpy() - np.asarray(j)).ravel() for t, j in pairs])
    norm = np.linalg.norm(np.concatenate([np.asarray(j).ravel() for _, j in pairs]))
    assert norm > 0 and np.linalg.norm(diff) <= GRAD_TOL * norm, np.linalg.norm(diff) / norm

    j_critic, _ = jl.critic_loss(j_state.critic["online"], j_batch)
    t_critic, _ = tl.critic_loss(t_state.critic.online, t_batch)
    _close(t_critic, j_critic)


def test_a_whole_update_phase_agrees(windows):
    """rpo_epochs AdamW actor steps, the critics' steps and the target critics' Polyak step, on each side's
    batch: with one minibatch per epoch every step sees the whole batch (a mean: the shuffle cannot matter),
    so the two updates are the same computation and the parameters after it must agree."""
    cfg, (j_state, j_data, *_), (t_state, t_data, *_) = windows
    cfg = cfg.replace(num_epochs=3, num_minibatches=1, rpo_minibatches=1)
    j_tgt = jax_rpo.targets(j_data, bind("jax", "reference"), cfg)
    j_batch = jax_rpo.flat_batch(j_state.actor, j_data, j_tgt, cfg)
    t_tgt = torch_rpo.targets(t_data, bind("torch", "reference"), cfg)
    t_batch = torch_rpo.flat_batch(t_state.actor, t_data, t_tgt, cfg)
    j_opt = jax_rpo.make_optimizers(cfg)
    carry = (j_state.actor, j_state.critic, j_opt[0].init(j_state.actor), j_opt[1].init(j_state.critic))
    (j_actor, j_critic, _, _), j_metrics = jax_rpo.update(carry, j_batch, jax.random.PRNGKey(1), j_opt, None,
                                                          cfg)
    t_state.actor_opt, t_state.critic_opt = torch_rpo.make_optimizers(cfg, t_state.actor, t_state.critic,
                                                                      torch.device("cpu"))
    t_metrics = torch_rpo.update(t_state, t_batch, None, cfg, NO_RANGES)
    for key in ("actor/loss", "actor/kl", "critic/loss"):
        _close(t_metrics[key], j_metrics[key], rtol=1e-4, atol=1e-6)
    before = {"log_std": j_state.actor["log_std"], "out.w": j_state.actor["net"]["out"]["w"],
              "online.out_w": j_state.critic["online"]["out"]["w"],
              "target.out_w": j_state.critic["target"]["out"]["w"]}
    j_after = {"log_std": j_actor["log_std"], "out.w": j_actor["net"]["out"]["w"],
               "online.out_w": j_critic["online"]["out"]["w"], "target.out_w": j_critic["target"]["out"]["w"]}
    t_after = {"log_std": t_state.actor.log_std, "out.w": t_state.actor.net.out.weight.T,
               "online.out_w": t_state.critic.online.out_w, "target.out_w": t_state.critic.target.out_w}
    for name, j in j_after.items():
        moved = _scale(np.asarray(j) - np.asarray(before[name]))
        assert moved > 0, name
        _close(t_after[name], j, atol=1e-3 * moved)  # within 0.1% of how far the update moved it
