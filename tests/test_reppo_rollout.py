"""REPPO's rollout on both frameworks against a float64 hand computation on ToyPointMass (docs/algorithms.md
sections 1 and 3):
the soft reward r - gamma * alpha * (1 - terminated) * log pi(a'|s'), with a' drawn afresh, independently
of a_t; V and psi at the TRUE next observation when an episode is truncated; stored actions clipped to
+-action_clip; and pi_old frozen for the whole update phase.

The oracle re-does every step in numpy float64 from the parameters, the toy's dynamics (toy_common.py)
and the rollout's noise draws: it shares no code with the networks, kernels or env under test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reppo_fast.config import Config
from reppo_fast.envs import make_env
from reppo_fast.envs import toy_common as toy
from reppo_fast.envs.contract_jax import EnvState
from reppo_fast.envs.toy_common import ToyData, ToyState
from reppo_fast.kernels import bind
from reppo_fast.on_jax.reppo import ALGORITHM
from reppo_fast.on_jax.reppo import networks as nets
from reppo_fast.on_jax.trainer import RolloutCarry, Trainer

N, A, T, EPISODE = 4, 2, 2, 5
CFG = Config().replace(env="ToyPointMass", num_envs=N, num_steps=T, num_epochs=3, num_minibatches=2,
                       actor_hidden=16, critic_hidden=16, num_bins=21, v_min=0.0, v_max=20.0,
                       obs_norm=False, action_clip=0.5, gamma=0.9, alpha_init=0.3, lr=1e-2,
                       precision="float32")

# Env 0 and 3 run on; env 1 hits its time limit on the first step (counter EPISODE - 1); env 2 starts at
# x = 2.49 moving outwards at 0.5, so whatever it does, x' = 2.49 + 0.1 * (0.45 + 0.1 * a) > 2.5: terminal.
QPOS = np.array([[0.3, -0.2], [0.5, 0.1], [2.49, 0.0], [-0.7, 0.4]])
QVEL = np.array([[0.0, 0.0], [0.1, 0.0], [0.5, 0.0], [0.0, -0.1]])
COUNT = np.array([0, EPISODE - 1, 0, 1])


# --- the float64 oracle ----------------------------------------------------------------------------------

def _f64(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def _linear(p, x):
    return x @ p["w"] + p["b"]


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _block(p, x):
    h = _linear(p["linear"], x)
    return _silu(h / np.sqrt(np.mean(h ** 2, axis=-1, keepdims=True) + 1e-6) * p["scale"])


def _policy(actor, obs, eps):
    """(tanh action, log pi) of u = mean + std * eps: log N(u; mean, std) - log(1 - tanh(u)^2)."""
    x = obs
    for p in actor["net"]["blocks"]:
        x = _block(p, x)
    mean, log_std = np.split(_linear(actor["net"]["out"], x), 2, axis=-1)
    u = mean + np.exp(log_std) * eps
    log_normal = -0.5 * eps ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    return np.tanh(u), np.sum(log_normal - np.log(1.0 - np.tanh(u) ** 2), axis=-1)


def _critic(critic, obs, action, cfg=CFG):
    """(Q = sum softmax(logits) * centres, features z)."""
    z = _linear(critic["enc_out"], _block(critic["enc_in"], np.concatenate([obs, action], axis=-1)))
    logits = _linear(critic["q_out"], _block(critic["q_hidden"], _silu(z))) + 40.0 * critic["zero_dist"]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return p @ np.linspace(cfg.reppo.v_min, cfg.reppo.v_max, cfg.reppo.num_bins), z


def _toy_step(qpos, qvel, action):
    """toy_common.py's dynamics: (x', v', reward, done)."""
    qvel = toy.VELOCITY_DECAY * qvel + toy.FORCE_GAIN * action
    qpos = qpos + toy.DT * qvel
    reward = 1.0 - np.tanh(toy.REWARD_SHARPNESS * np.sum(qpos ** 2, axis=-1))
    return qpos, qvel, reward, np.max(np.abs(qpos), axis=-1) > toy.BOUND


# --- the setup: the same start on both frameworks -------------------------------------------------------

def _trainer(algorithm=ALGORITHM, cfg=CFG):
    env = make_env("ToyPointMass", num_envs=N, episode_length=EPISODE)
    return Trainer(cfg, env, env, bind("jax", "reference"), algorithm)


def _carry(state):
    """The init state's carry with the envs put where the test wants them."""
    obs = np.concatenate([QPOS, QVEL], axis=-1).astype(np.float32)
    raw = ToyState(ToyData(jnp.float32(QPOS), jnp.float32(QVEL)), jnp.asarray(obs), jnp.zeros(N),
                   jnp.zeros(N))
    env = EnvState(raw, jnp.asarray(obs), jnp.int32(COUNT), state.rollout.env.key)
    return RolloutCarry(env, state.rollout.norm, state.rollout.ep_return)


def _rollout_jax(cfg):
    """(transitions as numpy [T, N, ...], actor and critic as float64 trees, per step (eps_act, eps_next))."""
    trainer = _trainer(cfg=cfg)
    state = trainer.init_state(0)
    key = jax.random.PRNGKey(7)
    _, data, _ = trainer._rollout(state.actor, state.critic, _carry(state), key)
    noise = [np.asarray(ALGORITHM.step_noise(k, N, A), np.float64) for k in jax.random.split(key, T)]
    return jax.tree.map(np.asarray, data._asdict()), _f64(state.actor), _f64(state.critic), noise


def _torch_linear(linear):
    return {"w": linear.weight.detach().double().numpy().T, "b": linear.bias.detach().double().numpy()}


def _torch_block(block):
    return {"linear": _torch_linear(block.linear), "scale": block.scale.detach().double().numpy()}


def _rollout_torch(cfg):
    """As _rollout_jax, on the torch trainer, with its parameters read into the JAX layout."""
    import torch

    from reppo_fast.envs import make_torch_env
    from reppo_fast.on_torch.reppo import ALGORITHM as TORCH_ALGORITHM
    from reppo_fast.on_torch.trainer import Trainer as TorchTrainer

    env = make_torch_env("ToyPointMass", num_envs=N, episode_length=EPISODE, device="cpu")
    trainer = TorchTrainer(cfg.replace(framework="torch"), env, env, bind("torch", "reference"),
                           TORCH_ALGORITHM, torch.device("cpu"))
    state = trainer.init_state(0)
    start = env.state_dict()
    start.update({"raw.data.qpos": np.float32(QPOS), "raw.data.qvel": np.float32(QVEL),
                  "obs": np.float32(np.concatenate([QPOS, QVEL], axis=-1)), "step_count": np.int32(COUNT)})
    start["raw.obs"] = start["obs"]
    env.load_state_dict(start)
    replay = torch.Generator().manual_seed(0)
    replay.set_state(state.generator.get_state())
    _, data, _ = trainer._rollout(state.actor, state.critic, state.rollout, state.generator)
    noise = [TORCH_ALGORITHM.step_noise(replay, N, A).double().numpy() for _ in range(T)]
    net, critic = state.actor.net, state.critic
    actor = {"net": {"blocks": [_torch_block(b) for b in net.blocks], "out": _torch_linear(net.out)},
             "log_alpha": state.actor.log_alpha.detach().double().numpy()}
    critic = {**{n: _torch_block(getattr(critic, n)) for n in ("enc_in", "q_hidden", "pred_hidden")},
              **{n: _torch_linear(getattr(critic, n)) for n in ("enc_out", "q_out", "pred_out")},
              "zero_dist": critic.zero_dist.detach().double().numpy()}
    return {k: v.numpy() for k, v in data._asdict().items()}, actor, critic, noise


@pytest.mark.parametrize("framework", ["jax", "torch"])
@pytest.mark.parametrize("bootstrap_all", [False, True], ids=["terminal", "bootstrap_terminations"])
def test_rollout_matches_a_float64_hand_computation(float32_matmuls, framework, bootstrap_all):
    """With bootstrap_terminations (the ManiSkill presets) a termination is recorded as a truncation: it
    keeps the entropy term and bootstraps."""
    cfg = CFG.replace(bootstrap_terminations=bootstrap_all)
    data, actor, critic, noise = (_rollout_jax if framework == "jax" else _rollout_torch)(cfg)
    alpha = np.exp(actor["log_alpha"])
    assert abs(alpha - CFG.reppo.alpha_init) < 1e-6

    qpos, qvel, count = QPOS, QVEL, COUNT
    clipped_any = False
    for t, (eps_act, eps_next) in enumerate(noise):
        obs = np.concatenate([qpos, qvel], axis=-1)
        np.testing.assert_allclose(data["obs"][t], obs, rtol=1e-6, atol=1e-6)
        action, _ = _policy(actor, obs, eps_act)
        stored = np.clip(action, -CFG.action_clip, CFG.action_clip)
        clipped_any |= bool(np.any(np.abs(action) > CFG.action_clip))
        np.testing.assert_allclose(data["action"][t], stored, rtol=1e-5, atol=1e-6)

        next_qpos, next_qvel, reward, terminated = _toy_step(qpos, qvel, stored)
        truncated = (count + 1 >= EPISODE) & ~terminated
        ended = terminated | truncated
        if bootstrap_all:
            terminated, truncated = np.zeros_like(terminated), ended
        np.testing.assert_array_equal(data["terminated"][t], terminated)
        np.testing.assert_array_equal(data["truncated"][t], truncated)
        np.testing.assert_allclose(data["reward"][t], reward, rtol=1e-5, atol=1e-6)

        # a' ~ pi_old(.|s') with its own noise, at the TRUE next observation (also where truncated)
        true_next = np.concatenate([next_qpos, next_qvel], axis=-1)
        next_action, next_logp = _policy(actor, true_next, eps_next)
        next_value, next_features = _critic(critic, true_next, next_action)
        soft = reward - CFG.gamma * alpha * np.where(terminated, 0.0, next_logp)
        np.testing.assert_allclose(data["next_value"][t], next_value, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(data["next_features"][t], next_features, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(data["soft_reward"][t], soft, rtol=1e-4, atol=1e-4)
        # had a' reused the acting noise, the soft reward would differ (the untrained Q is ~flat in a')
        reused = reward - CFG.gamma * alpha * np.where(terminated, 0.0, _policy(actor, true_next, eps_act)[1])
        assert np.all(np.abs(reused - soft)[~terminated] > 1e-3)

        # ended envs restart: ToyPointMass resets to a random position at rest (read back from obs)
        reset_qpos = np.asarray(data["obs"][t + 1, :, :A], np.float64) if t + 1 < T else next_qpos
        qpos = np.where(ended[:, None], reset_qpos, next_qpos)
        qvel = np.where(ended[:, None], 0.0, next_qvel)
        count = np.where(ended, 0, count + 1)
    assert clipped_any  # the clip was exercised
    assert data["truncated"][0, 1] and (data["truncated"] if bootstrap_all else data["terminated"])[0, 2]


def test_pi_old_is_frozen_for_the_whole_update_phase(float32_matmuls):
    """Every minibatch of every epoch sees pi_old = the actor at the start of the update phase, while
    the actor itself moves (lr 1e-2, 3 epochs x 2 minibatches)."""
    state = _trainer().init_state(0)
    start = state.actor

    def update_step(carry, mb, noise, tx, kernels, cfg, dp):
        new_carry, metrics = ALGORITHM.update_step(carry, mb, noise, tx, kernels, cfg, dp)
        mean0, log_std0 = nets.actor_apply(start["net"], mb.obs)
        mean_now, _ = nets.actor_apply(carry[0]["net"], mb.obs)
        metrics["test/old_vs_start"] = jnp.maximum(jnp.max(jnp.abs(mb.old_mean - mean0)),
                                                   jnp.max(jnp.abs(mb.old_log_std - log_std0)))
        metrics["test/now_vs_old"] = jnp.max(jnp.abs(mean_now - mb.old_mean))
        return new_carry, metrics

    _, metrics = _trainer(ALGORITHM._replace(update_step=update_step)).iteration(state)
    # a mean over minibatches of non-negative maxima: zero only if every minibatch's pi_old is the start's
    assert float(metrics["test/old_vs_start"]) < 1e-6
    assert float(metrics["test/now_vs_old"]) > 1e-3
