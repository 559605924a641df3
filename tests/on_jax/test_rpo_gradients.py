"""RPO's gradients on the JAX path (docs/algorithms.md section 11, ../shared/rpo_spec.md sections 3 and 5).

- At theta = theta_old the first epoch's actor gradient is SHAC's: -dJ/dtheta / (T N), with J the window
  return backpropagated through the env and the policy, written here as a plain loop over the steps that
  shares no code with the trainer's rollout, the window objective or the networks (float64).
- The regenerated action, the mask / clip weights and the KL penalty against hand-written float64 oracles.
- Episode boundaries cut the action-gradient; non-finite action-gradients never reach the parameters.
- dJ/du through MJX physics (CartpoleSwingup, float64) against central finite differences.

The float64 tests build their env and trace their functions inside `jax.enable_x64(True)`, which restores
the previous setting on exit, so the rest of the suite keeps float32.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from reppo_fast.algorithm import SKIPPED_STEPS
from reppo_fast.config import Config
from reppo_fast.envs.contract_jax import EnvState, VecEnv
from reppo_fast.envs.toy_common import ToyData, ToyState
from reppo_fast.envs.toy_jax import ToyPointMass, toy_dynamics
from reppo_fast.kernels import bind
from reppo_fast.on_jax.rpo import ALGORITHM, losses
from reppo_fast.on_jax.rpo import networks as nets
from reppo_fast.on_jax.trainer import Trainer

pytestmark = pytest.mark.xdist_group("rpo_gradients")  # its module fixture is built once, on one worker

TINY = dict(algo="rpo", actor_hidden=16, actor_hidden_blocks=2, critic_hidden=16, critic_hidden_blocks=2,
            gamma=0.9, precision="float32", rpo_grad_clip=None, rpo_ent_coef=0.0, rpo_minibatches=1)


def _f64(tree):
    """Every floating leaf as float64 (call inside jax.enable_x64)."""
    return jax.tree.map(lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _rel_err(got, want):
    got, want = ravel_pytree(got)[0], ravel_pytree(want)[0]
    return float(jnp.linalg.norm(got - want) / jnp.linalg.norm(want))


# --- independent float64 oracles: the networks and SHAC's window return, written out ---------------------

def _mlp(p, x):
    """Linear -> LayerNorm(eps 1e-5) -> SiLU per hidden block, then the output Linear."""
    for block in p["blocks"]:
        h = x @ block["linear"]["w"] + block["linear"]["b"]
        mean = jnp.mean(h, axis=-1, keepdims=True)
        var = jnp.mean((h - mean) ** 2, axis=-1, keepdims=True)
        h = (h - mean) / jnp.sqrt(var + 1e-5) * block["norm"]["scale"] + block["norm"]["bias"]
        x = h / (1.0 + jnp.exp(-h))
    return x @ p["out"]["w"] + p["out"]["b"]


def _policy(actor, s):
    """(mean, std) of the pre-tanh Gaussian, for both log-std forms."""
    out = _mlp(actor["net"], s)
    if "log_std" in actor:
        return out, jnp.exp(actor["log_std"]) * jnp.ones_like(out)
    mean, log_std = jnp.split(out, 2, axis=-1)
    return mean, jnp.exp(log_std)


def _v_target(target, s):
    """The mean of the C stacked target critics."""
    num = jax.tree.leaves(target)[0].shape[0]
    return sum(_mlp(jax.tree.map(lambda x: x[i], target), s)[..., 0] for i in range(num)) / num


def _shac_objective(actor, critic_target, raw, start: EnvState, keys, cfg, max_steps):
    """SHAC's window return summed over envs, by hand: per env a segment counter c (0 at the window start
    and after every episode end), J += gamma^c r_k, and + gamma^(c+1) V_target(s_{k+1}) where the segment
    ends by truncation or the window, not by termination; the time limit, auto-reset (a stop-gradient
    fresh state from the contract's reset key) and the observation normaliser (mean and population variance
    of every observation acted on so far, under stop_gradient) re-done here. Gradients flow through the
    physics, the rewards, V_target and every later action of the same episode. One step is jitted (compiled
    once, its derivatives too); the loop over the window is Python."""
    num_envs = start.obs.shape[0]

    @jax.jit
    def step(actor, carry, key, norm_mean, norm_var, last):
        state, obs, count, c, env_key = carry

        def norm(o):
            return (o - norm_mean) / jnp.sqrt(norm_var + 1e-2) if cfg.obs_norm else o

        mean, std = _policy(actor, norm(obs))
        eps = ALGORITHM.step_noise(key, num_envs, mean.shape[-1])
        action = jnp.clip(jnp.tanh(mean + std * eps), -cfg.action_clip, cfg.action_clip)
        nxt = jax.vmap(raw.step)(state, action)
        next_obs, reward = nxt.obs.astype(jnp.float64), nxt.reward.astype(jnp.float64)
        terminated = nxt.done != 0
        count = count + 1
        truncated = (count >= max_steps) & ~terminated
        bootstrap = (truncated | last) & ~terminated
        value = _v_target(critic_target, norm(next_obs))
        gain = (jnp.sum(cfg.gamma ** c * reward)
                + jnp.sum(jnp.where(bootstrap, cfg.gamma ** (c + 1) * value, 0.0)))
        ended = terminated | truncated
        env_key, reset_key = jax.random.split(env_key)
        fresh = jax.lax.stop_gradient(jax.vmap(raw.reset)(jax.random.split(reset_key, num_envs)))
        state = jax.tree.map(lambda f, x: jnp.where(ended.reshape((-1,) + (1,) * (x.ndim - 1)), f, x),
                             fresh, nxt)
        obs = jnp.where(ended[:, None], fresh.obs.astype(jnp.float64), next_obs)
        carry = (state, obs, jnp.where(ended, 0, count), jnp.where(ended, 0.0, c + 1.0), env_key)
        return gain, carry

    carry = (start.raw, start.obs, start.step_count, jnp.zeros(num_envs), start.key)
    seen, objective = [], 0.0
    for k, key in enumerate(keys):
        seen.append(carry[1])
        stats = jax.lax.stop_gradient(jnp.concatenate(seen))
        gain, carry = step(actor, carry, key, stats.mean(0), stats.var(0), k == len(keys) - 1)
        objective = objective + gain
    return objective


def _rpo_epoch1_grad(trainer, state, key):
    """The trainer's pipeline: differentiated rollout -> targets -> flat batch -> grad of the actor loss."""
    cfg = trainer.cfg
    _, data, _, _ = jax.jit(trainer._differentiated_rollout)(state, key)
    tgt = ALGORITHM.targets(data, trainer.kernels, cfg)
    batch = ALGORITHM.flat_batch(state.actor, data, tgt, cfg)
    grad = jax.grad(lambda p: losses.actor_loss(p, batch, cfg.rpo)[0])(state.actor)
    return grad, data


# --- ToyPointMass: a window with a termination, truncations and their restarts ---------------------------

TOY_N, TOY_T, TOY_EPISODE = 3, 6, 4
# env 0 truncates at step 3 and restarts; env 1 starts at x = 2.48 moving outwards at 0.6, so whatever
# it does x' = 2.48 + 0.1 * (0.54 + 0.1 a) > 2.5: it terminates at step 0 (no bootstrap), restarts,
# truncates at step 4 and restarts again; env 2 truncates at step 1 and at step 5, the window's last step.
TOY_QPOS = np.array([[0.3, -0.2], [2.48, 0.1], [-0.6, 0.5]])
TOY_QVEL = np.array([[0.1, 0.0], [0.6, 0.0], [0.0, -0.2]])
TOY_COUNT = np.array([0, 0, 2])


def _toy_start(env_key, raw_cls=ToyState, **extra):
    obs = np.concatenate([TOY_QPOS, TOY_QVEL], axis=-1)
    raw = raw_cls(ToyData(jnp.asarray(TOY_QPOS), jnp.asarray(TOY_QVEL)), jnp.asarray(obs),
                  jnp.zeros(TOY_N, jnp.float32), jnp.zeros(TOY_N, jnp.float32), **extra)
    return EnvState(raw, jnp.asarray(obs), jnp.int32(TOY_COUNT), env_key)


@pytest.mark.parametrize("std", ["state_independent", "state_dependent"])
def test_first_epoch_gradient_is_shac_on_the_toy(std):
    """rpo_grad_clip None, rpo_ent_coef 0, one minibatch, theta = theta_old: grad of the RPO actor loss on
    the trainer's batch equals -grad J / (T N) of the hand-written SHAC loop, to 1e-5 (float64). The window
    holds a termination, truncations (one at the window's last step) and the restarts after them, so the
    gradient cut, the segment discounts and both bootstraps are exercised; the observation normaliser is
    on."""
    with jax.enable_x64(True):
        cfg = Config().replace(env="ToyPointMass", num_envs=TOY_N, num_steps=TOY_T, rpo_std=std, **TINY)
        raw = ToyPointMass()
        env = VecEnv(raw, num_envs=TOY_N, max_episode_steps=TOY_EPISODE, name="ToyPointMass",
                     dtype=jnp.float64)
        trainer = Trainer(cfg, env, env, bind("jax", "reference"), ALGORITHM)
        state = _f64(trainer.init_state(0))
        # random critics, so V_target varies with the state (a fresh target equals the online copy)
        state = state._replace(rollout=state.rollout._replace(env=_toy_start(state.rollout.env.key)))
        key = jax.random.PRNGKey(3)

        grad, data = _rpo_epoch1_grad(trainer, state, key)
        assert data.action_grad.dtype == jnp.float64
        assert data.terminated[0, 1] and data.truncated[3, 0] and data.truncated[1, 2]
        assert data.truncated[4, 1] and data.truncated[5, 2]
        assert int(data.terminated.sum()) == 1 and int(data.truncated.sum()) == 4

        keys = jax.random.split(key, TOY_T)
        start = state.rollout.env
        shac = jax.grad(_shac_objective)(state.actor, state.critic["target"], raw, start, keys, cfg,
                                         TOY_EPISODE)
        want = jax.tree.map(lambda g: -g / (TOY_T * TOY_N), shac)
        assert _rel_err(grad, want) <= 1e-5, _rel_err(grad, want)
        # the objective itself matches the trainer's (the same window, not merely the same gradient)
        j_hand = _shac_objective(state.actor, state.critic["target"], raw, start, keys, cfg, TOY_EPISODE)
        j_trainer = jax.jit(trainer._differentiated_rollout)(state, key)[3]["train/window_objective"]
        np.testing.assert_allclose(j_trainer * TOY_N, j_hand, rtol=1e-10)


# --- regeneration, mask, clip and KL: losses.py against float64 oracles -----------------------------------

def _actor(std, key=0, hidden=8, obs_size=3, action_size=2, log_std_init=-0.5):
    return _f64(nets.init_actor(jax.random.PRNGKey(key), obs_size, action_size, hidden, 2, std, log_std_init))


def _moved(actor, scale=0.1, key=9):
    """theta != theta_old: every parameter moved by a random step."""
    flat, unravel = ravel_pytree(actor)
    return unravel(flat + scale * jax.random.normal(jax.random.PRNGKey(key), flat.shape, flat.dtype))


@pytest.mark.parametrize("std", ["state_independent", "state_dependent"])
def test_regenerated_action_is_z_with_the_new_policys_derivative(std):
    """z~ = mu_theta + sigma_theta sg((z - mu_theta) / sigma_theta) equals z at theta_old and at theta !=
    theta_old, and dz~/dtheta is the Jacobian of f_theta(e) = mu_theta(s) + sigma_theta(s) e at the fixed
    e = eps~ (not 0, which a misplaced stop_gradient would give), checked by jax and by central
    differences."""
    with jax.enable_x64(True):
        old = _actor(std)
        obs = jax.random.normal(jax.random.PRNGKey(1), (5, 3), jnp.float64)
        mean, log_std = nets.actor_apply(old, obs)
        z = mean + jnp.exp(log_std) * jax.random.normal(jax.random.PRNGKey(2), mean.shape, jnp.float64)
        for actor in (old, _moved(old)):
            def regen(p):
                return losses.regenerate(*nets.actor_apply(p, obs), z)

            np.testing.assert_allclose(regen(actor), z, rtol=0, atol=1e-12)
            m, s = _policy(actor, obs)
            eps = np.asarray((z - m) / s)  # a constant from here on

            def f(p, eps=eps):
                m, s = _policy(p, obs)
                return m + s * eps

            jac = ravel_pytree(jax.jacrev(regen)(actor))[0]
            want = ravel_pytree(jax.jacrev(f)(actor))[0]
            assert float(jnp.max(jnp.abs(want))) > 0.1
            np.testing.assert_allclose(jac, want, rtol=1e-10, atol=1e-12)
            flat, unravel = ravel_pytree(actor)
            v = jax.random.normal(jax.random.PRNGKey(4), flat.shape, jnp.float64)
            h = 1e-6
            fd = (f(unravel(flat + h * v)) - f(unravel(flat - h * v))) / (2 * h)
            np.testing.assert_allclose(jax.jvp(regen, (actor,), (unravel(v),))[1], fd, rtol=1e-6, atol=1e-8)


def _np_log_prob(mean, log_std, z):
    mean, log_std, z = (np.asarray(x, np.float64) for x in (mean, log_std, z))
    return np.sum(-0.5 * ((z - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1)


B, OBS, ACT = 16, 3, 2


def _mask_batch(actor):
    """A batch at `actor` whose pi_old has its mean shifted by a per-sample offset (in units of its std) and
    its std scaled a little, except three samples where pi_old is a narrow Gaussian centred on z: rho spans
    both sides of [1 - 0.8, 1 + 1.0]."""
    obs = jax.random.normal(jax.random.PRNGKey(11), (B, OBS), jnp.float64)
    mean, log_std = nets.actor_apply(actor, obs)
    z = mean + jnp.exp(log_std) * jax.random.normal(jax.random.PRNGKey(12), mean.shape, jnp.float64)
    shift = jnp.array([0.0, 0.05, -0.1, 0.2, 0.4, -0.4, 3.0, -3.0, 2.5, 0.6, 4.0, -0.8, 0.0, 1.5, -2.0, 0.3])
    mean_old = mean + shift[:, None] * jnp.exp(log_std)
    log_std_old = log_std + jnp.linspace(-0.3, 0.3, B)[:, None]
    peaked = (jnp.arange(B) % 5 == 2)[:, None]
    mean_old = jnp.where(peaked, z, mean_old)
    log_std_old = jnp.where(peaked, log_std - 1.5, log_std_old)
    g = jax.random.normal(jax.random.PRNGKey(13), mean.shape, jnp.float64)
    return losses.RpoBatch(obs, z, mean_old, log_std_old, g, jnp.zeros(B), jnp.zeros(B, bool))


def _surrogate_oracle_grad(actor, batch, weights):
    """grad of -(1/B) sum_k w_k <g_k, mu_theta(s_k) + sigma_theta(s_k) eps~_k> with w and eps~ constants."""
    m, s = _policy(actor, batch.obs)
    eps = np.asarray((batch.z - m) / s)

    def loss(p):
        m, s = _policy(p, batch.obs)
        return -jnp.mean(weights * jnp.sum(batch.action_grad * (m + s * eps), axis=-1))

    return jax.grad(loss)(actor)


@pytest.mark.parametrize("std", ["state_independent", "state_dependent"])
def test_samples_outside_the_ratio_window_contribute_nothing(std):
    """`mask`: the surrogate gradient is -(1/B) sum rho_k 1[0.2 <= rho_k <= 2] g_k dz~_k/dtheta (rho from a
    float64 log-density by hand); setting the outside samples' g to 0 leaves it unchanged, and unmasked they
    would have changed it. `clip`: the weights are clip(rho, 0.2, 2)."""
    with jax.enable_x64(True):
        actor = _actor(std)
        batch = _mask_batch(actor)
        mean, log_std = nets.actor_apply(actor, batch.obs)
        rho = np.exp(_np_log_prob(mean, log_std, batch.z)
                     - _np_log_prob(batch.mean_old, batch.log_std_old, batch.z))
        inside = (rho >= 0.2) & (rho <= 2.0)
        assert inside.sum() >= 6 and (rho < 0.2).sum() >= 2 and (rho > 2.0).sum() >= 2, rho
        assert np.any(np.abs(rho[inside] - 1.0) > 0.1)  # the weight's value matters, not only its support

        def grad(rpo_batch, mode):
            rpo = Config().replace(rpo_kl_coef=0.0, rpo_clip_mode=mode).rpo
            return jax.grad(lambda p: losses.actor_loss(p, rpo_batch, rpo)[0])(actor)

        masked = grad(batch, "mask")
        want = _surrogate_oracle_grad(actor, batch, rho * inside)
        assert _rel_err(masked, want) <= 1e-10
        outside_zeroed = batch._replace(action_grad=jnp.where(inside[:, None], batch.action_grad, 0.0))
        assert _rel_err(grad(outside_zeroed, "mask"), masked) <= 1e-12
        assert _rel_err(_surrogate_oracle_grad(actor, batch, rho), want) > 0.1
        _, metrics = losses.actor_loss(actor, batch, Config().rpo)
        np.testing.assert_allclose(metrics["actor/inside_fraction"], inside.mean())

        clipped = grad(batch, "clip")
        assert _rel_err(clipped, _surrogate_oracle_grad(actor, batch, np.clip(rho, 0.2, 2.0))) <= 1e-10


@pytest.mark.parametrize("kl_dir", ["old_new", "new_old"])
@pytest.mark.parametrize("std", ["state_independent", "state_dependent"])
def test_kl_penalty_is_zero_at_theta_old_and_the_closed_form_elsewhere(std, kl_dir):
    """At theta = theta_old the KL term and its gradient vanish. At theta != theta_old the logged KL is the
    batch mean of the float64 closed form in the configured direction (old_new: KL(pi_old || pi_theta)),
    which a Monte-Carlo estimate from the first argument's samples confirms; the other direction differs."""
    with jax.enable_x64(True):
        rpo = Config().replace(rpo_surr_coef=0.0, rpo_kl_coef=1.0, rpo_kl_dir=kl_dir).rpo
        actor = _actor(std)
        batch = _mask_batch(actor)
        mean, log_std = nets.actor_apply(actor, batch.obs)
        # pi_old a moderate step from the policy: its mean by up to one std, its std by up to e^0.5
        batch = batch._replace(mean_old=mean + jnp.linspace(-1.0, 1.0, B)[:, None] * jnp.exp(log_std),
                               log_std_old=log_std + jnp.linspace(0.5, -0.5, B)[:, None])
        at_old = batch._replace(mean_old=mean, log_std_old=log_std)
        (loss, metrics), grad = jax.value_and_grad(losses.actor_loss, has_aux=True)(actor, at_old, rpo)
        assert abs(float(loss)) < 1e-12 and abs(float(metrics["actor/kl"])) < 1e-12
        assert float(jnp.max(jnp.abs(ravel_pytree(grad)[0]))) < 1e-12
        assert float(jnp.max(jnp.abs(ravel_pytree(jax.grad(
            lambda p: losses.actor_loss(p, batch, rpo)[0])(actor))[0]))) > 1e-3  # away from it: nonzero

        moved = _moved(actor, scale=0.05)
        loss, metrics = losses.actor_loss(moved, batch, rpo)
        new_mean, new_log_std = (np.asarray(x) for x in nets.actor_apply(moved, batch.obs))
        old_mean, old_log_std = np.asarray(batch.mean_old), np.asarray(batch.log_std_old)

        def closed_form(mp, lp, mq, lq):
            vp, vq = np.exp(2 * lp), np.exp(2 * lq)
            return np.sum(0.5 * np.log(vq / vp) + (vp + (mp - mq) ** 2) / (2 * vq) - 0.5, axis=-1)

        p, q = ((old_mean, old_log_std), (new_mean, new_log_std))
        if kl_dir == "new_old":
            p, q = q, p
        want, other = closed_form(*p, *q), closed_form(*q, *p)
        np.testing.assert_allclose(metrics["actor/kl"], want.mean(), rtol=1e-12)
        np.testing.assert_allclose(loss, want.mean(), rtol=1e-12)
        x = p[0] + np.exp(p[1]) * np.random.default_rng(0).standard_normal((100_000, B, ACT))
        log_ratio = _np_log_prob(p[0], p[1], x) - _np_log_prob(q[0], q[1], x)  # [samples, B]
        monte_carlo = log_ratio.mean()
        stderr = np.sqrt(np.sum(log_ratio.var(0) / log_ratio.shape[0])) / B
        assert abs(monte_carlo - want.mean()) < 5 * stderr, (monte_carlo, want.mean(), stderr)
        assert abs(other.mean() - want.mean()) > 50 * stderr, (other.mean(), want.mean(), stderr)


# --- the gradient cut at episode ends ---------------------------------------------------------------------

class FlagState(NamedTuple):
    data: ToyData
    obs: jax.Array
    reward: jax.Array
    done: jax.Array
    flag: jax.Array  # 0 in the state the test starts from, 1 in every state reset() makes


class FlaggedToy:
    """ToyPointMass whose reward adds bonus * flag * sum(x'): the same as the toy until an episode ends,
    action-dependent after the restart."""

    def __init__(self, bonus: float):
        self.toy, self.bonus = ToyPointMass(), bonus
        self.action_size, self.observation_size = self.toy.action_size, self.toy.observation_size

    def reset(self, key):
        return FlagState(*self.toy.reset(key), flag=jnp.float32(1.0))

    def step(self, state, action):
        nxt = toy_dynamics(state.data.qpos, state.data.qvel, action)
        reward = nxt.reward + self.bonus * state.flag * jnp.sum(nxt.data.qpos)
        return FlagState(nxt.data, nxt.obs, reward, nxt.done, state.flag)


def test_episode_ends_cut_the_action_gradient():
    """dJ/da_k (data.action_grad) of steps up to an episode's end is the same whether the rewards after the
    restart carry an extra action-dependent term (bonus 5) or not (bonus 0); after the end it changes."""
    cfg = Config().replace(env="ToyPointMass", num_envs=TOY_N, num_steps=TOY_T, **TINY)
    grads = []
    for bonus in (0.0, 5.0):
        env = VecEnv(FlaggedToy(bonus), num_envs=TOY_N, max_episode_steps=TOY_EPISODE, name="FlaggedToy")
        trainer = Trainer(cfg, env, env, bind("jax", "reference"), ALGORITHM)
        state = trainer.init_state(0)
        start = _toy_start(state.rollout.env.key, FlagState, flag=jnp.zeros(TOY_N, jnp.float32))
        start = start._replace(raw=jax.tree.map(lambda x: x.astype(jnp.float32), start.raw),
                               obs=start.obs.astype(jnp.float32))
        state = state._replace(rollout=state.rollout._replace(env=start))
        _, data, _, _ = jax.jit(trainer._differentiated_rollout)(state, jax.random.PRNGKey(3))
        grads.append(np.asarray(data.action_grad))
    ends = [3, 0, 1]  # the step at which each env's first episode ends (see TOY_QPOS)
    for n, end in enumerate(ends):
        before, after = slice(0, end + 1), slice(end + 1, TOY_T)
        if n != 1:  # env 1's only step before its end is terminal at |x| > 2.5, where tanh saturates: g ~ 0
            assert np.all(np.abs(grads[0][before, n]) > 1e-6)
        np.testing.assert_allclose(grads[1][before, n], grads[0][before, n], rtol=1e-5, atol=1e-7)
        assert np.all(np.abs(grads[1][after, n] - grads[0][after, n]).max(-1) > 1e-3)


# --- non-finite action-gradients --------------------------------------------------------------------------

def _finite(tree):
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype,
                                                                                               jnp.floating))


def test_injected_nonfinite_action_grads_are_zeroed_and_counted():
    """NaN and inf put into data.action_grad of one env (4 samples) before `targets`: after a full RPO update
    (5 actor epochs, the critics, the target move) every parameter and optimiser state is finite, and
    actor/nonfinite_action_grads counts exactly the 4. Without the sanitising, NaN reaches the actor."""
    cfg = Config().replace(env="ToyPointMass", num_envs=4, num_steps=8, num_epochs=2, num_minibatches=2,
                           **{**TINY, "rpo_grad_clip": 1.0})
    env = VecEnv(ToyPointMass(), num_envs=4, max_episode_steps=5, name="ToyPointMass")
    trainer = Trainer(cfg, env, env, bind("jax", "reference"), ALGORITHM)
    state = trainer.init_state(0)
    _, data, _, _ = jax.jit(trainer._differentiated_rollout)(state, jax.random.PRNGKey(3))
    assert _finite(data.action_grad)
    assert np.all(np.abs(np.tanh(np.asarray(data.z[:, 2]))) < cfg.action_clip)  # g = dJ/da * tanh' there
    bad = data.action_grad.at[1, 2, 0].set(jnp.nan).at[4, 2, 1].set(jnp.inf).at[5, 2].set(-jnp.inf)
    bad = bad.at[7, 2, 1].set(jnp.nan)
    data = data._replace(action_grad=bad)
    tgt = ALGORITHM.targets(data, trainer.kernels, cfg)
    batch = ALGORITHM.flat_batch(state.actor, data, tgt, cfg)
    update = jax.jit(trainer._update)
    actor, critic, actor_opt, critic_opt, metrics = update(state, batch, jax.random.PRNGKey(4))
    assert int(metrics["actor/nonfinite_action_grads"]) == 4
    assert _finite((actor, critic, actor_opt, critic_opt))
    assert _rel_err(actor, state.actor) > 1e-4  # it did train
    # Without the sanitising every actor step's loss is NaN: the update guard skips them all, so the actor
    # does not train at all (the critics, which do not read g, still do).
    g = losses.pre_tanh_grad(bad, data.z, cfg.action_clip).reshape(-1, 2)
    unsanitised, *_, metrics = update(state, batch._replace(action_grad=g), jax.random.PRNGKey(4))
    assert int(metrics[SKIPPED_STEPS]) == cfg.rpo.rpo_epochs * cfg.rpo.rpo_minibatches
    pairs = zip(jax.tree.leaves(unsanitised), jax.tree.leaves(state.actor))
    assert all(np.array_equal(a, b) for a, b in pairs)


def test_physics_blowing_up_leaves_the_parameters_finite():
    """ToyPointMass(nan_above=0.3): envs whose action exceeds 0.3 turn NaN (tens of env steps here). A full
    jitted iteration keeps every parameter finite, and actor/nonfinite_action_grads equals the count of
    non-finite g = dJ/da * tanh'(z) recomputed by hand from the same window (0 here: the contract's selects
    already keep the NaN state out of the backward pass; the injection test above covers a count > 0)."""
    cfg = Config().replace(env="ToyPointMass", num_envs=8, num_steps=8, num_epochs=2, num_minibatches=2,
                           rpo_log_std_init=0.0, **TINY)
    env = VecEnv(ToyPointMass(nan_above=0.3), num_envs=8, max_episode_steps=20, name="ToyPointMass")
    trainer = Trainer(cfg, env, env, bind("jax", "reference"), ALGORITHM)
    state = trainer.init_state(0)
    new, metrics = trainer.iteration(state)
    assert int(metrics["train/nonfinite"]) > 0
    assert _finite((new.actor, new.critic, new.actor_opt, new.critic_opt, new.rollout))
    _, k_roll, _ = jax.random.split(state.key, 3)  # the iteration's rollout key
    _, data, _, _ = jax.jit(trainer._differentiated_rollout)(state, k_roll)
    t = np.tanh(np.asarray(data.z, np.float64))
    g = np.where(np.abs(t) < cfg.action_clip, np.asarray(data.action_grad, np.float64) * (1 - t * t), 0.0)
    assert int(metrics["actor/nonfinite_action_grads"]) == int((~np.isfinite(g).all(-1)).sum())


# --- MJX physics: CartpoleSwingup in float64 --------------------------------------------------------------

CART_N, CART_T, CART_EPISODE = 2, 4, 3


@pytest.fixture(scope="module")
def cartpole():
    """CartpoleSwingup in float64 (built under x64), its trainer, a start whose envs truncate at steps 1 and
    2 of the window and restart, and the differentiated rollout compiled once for the module's tests."""
    pytest.importorskip("mujoco_playground")
    with jax.enable_x64(True):
        from mujoco_playground import registry

        raw = registry.load("CartpoleSwingup", config_overrides={"impl": "jax"})
        assert raw.mj_model.opt.iterations == 1
        env = VecEnv(raw, num_envs=CART_N, max_episode_steps=CART_EPISODE, name="CartpoleSwingup",
                     dtype=jnp.float64)
        # No observation normaliser: finite differences of J would see its statistics move with u, which the
        # gradient holds fixed by design (the toy's equivalence test covers the normaliser).
        cfg = Config().replace(env="CartpoleSwingup", num_envs=CART_N, num_steps=CART_T, obs_norm=False,
                               **TINY)
        trainer = Trainer(cfg, env, env, bind("jax", "reference"), ALGORITHM)
        state = _f64(trainer.init_state(0))
        start = state.rollout.env._replace(step_count=jnp.int32([1, 0]))
        state = state._replace(rollout=state.rollout._replace(env=start))
        key = jax.random.PRNGKey(5)
        grad, data = _rpo_epoch1_grad(trainer, state, key)
    return dict(raw=raw, trainer=trainer, state=state, key=key, grad=grad, data=data)


@pytest.mark.slow  # ~30 s more than the finite-difference test, which shares the fixture
def test_first_epoch_gradient_is_shac_on_cartpole(cartpole):
    """As on the toy, through MJX physics: the RPO actor gradient at theta_old equals -grad J / (T N) of the
    hand-written SHAC loop (float64, rel. err. <= 1e-5), over a window with a truncation in each env."""
    c = cartpole
    with jax.enable_x64(True):
        trainer, state = c["trainer"], c["state"]
        assert c["data"].truncated[1, 0] and c["data"].truncated[2, 1] and int(c["data"].truncated.sum()) == 2
        keys = jax.random.split(c["key"], CART_T)
        shac = jax.grad(_shac_objective)(state.actor, state.critic["target"], c["raw"], state.rollout.env,
                                         keys, trainer.cfg, CART_EPISODE)
        want = jax.tree.map(lambda g: -g / (CART_T * CART_N), shac)
        assert _rel_err(c["grad"], want) <= 1e-5, _rel_err(c["grad"], want)


def test_action_gradient_through_mjx_matches_finite_differences(cartpole):
    """dJ/du of the window objective of the trainer's rollout (data.action_grad, float64 CartpoleSwingup)
    against central differences (J(u + h e) - J(u - h e)) / 2h, h = 1e-6, for single entries (steps before
    and after a truncation) and one random direction: rel. err. <= 1e-5."""
    c = cartpole
    with jax.enable_x64(True):
        trainer, state, key = c["trainer"], c["state"], c["key"]
        grad = np.asarray(c["data"].action_grad)
        assert grad.dtype == np.float64 and np.all(np.isfinite(grad))

        @jax.jit
        def objective(u):
            _, data, _ = trainer._rollout(state.actor, state.critic, state.rollout, key, u)
            return ALGORITHM.window_objective(data, trainer.cfg)

        h = 1e-6
        zero = np.zeros(grad.shape)

        def central(direction):
            return (float(objective(zero + h * direction)) - float(objective(zero - h * direction))) / (2 * h)

        for index in [(0, 0, 0), (1, 0, 0), (2, 0, 0), (0, 1, 0), (1, 1, 0), (2, 1, 0)]:
            e = np.zeros(grad.shape)
            e[index] = 1.0
            assert abs(grad[index]) > 1e-3, index
            np.testing.assert_allclose(central(e), grad[index], rtol=1e-5, err_msg=str(index))
        v = np.random.default_rng(0).standard_normal(grad.shape)
        np.testing.assert_allclose(central(v), np.sum(grad * v), rtol=1e-5)
