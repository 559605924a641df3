"""The torch env contract (contract_torch.BatchedContract) on ToyPointMassTorch: the same properties as
test_env_contract.py, plus agreement with the JAX contract on identical inputs and state_dict resume."""

import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reppo_fast.envs import make_torch_env
from reppo_fast.envs.contract_jax import VecEnv
from reppo_fast.envs.contract_torch import BatchedContract
from reppo_fast.envs.toy_common import BOUND
from reppo_fast.envs.toy_jax import ToyPointMass, toy_dynamics
from reppo_fast.envs.toy_torch import ToyPointMassTorch

NUM_ENVS, MAX_STEPS, NAN_ABOVE = 8, 5, 10.0


def _env(num_envs=NUM_ENVS, **kw):
    return make_torch_env("ToyPointMass", num_envs=num_envs, episode_length=MAX_STEPS, device="cpu",
                          nan_above=NAN_ABOVE, **kw)


def _actions(seed, num_steps, num_envs=NUM_ENVS):
    generator = torch.Generator().manual_seed(seed)
    return 2 * torch.rand((num_steps, num_envs, 2), generator=generator) - 1


def _analytic_next_obs(obs, action):
    qpos, qvel = obs[:, :2], obs[:, 2:]
    qvel = 0.9 * qvel + 0.1 * action
    return torch.cat([qpos + 0.1 * qvel, qvel], dim=1)


def test_truncation_returns_the_true_next_obs_and_a_reset_obs():
    env = _env()
    assert isinstance(env, BatchedContract) and env.device == torch.device("cpu")
    assert (env.obs_size, env.action_size, env.max_episode_steps) == (4, 2, MAX_STEPS)
    obs = env.reset(0, random_step_count=False)
    assert obs.shape == (NUM_ENVS, 4) and obs.dtype == torch.float32
    for t, action in enumerate(_actions(1, MAX_STEPS)):
        prev_obs = env.obs
        out = env.step(action)
        last = t == MAX_STEPS - 1
        assert out.reward.shape == (NUM_ENVS,) and out.reward.dtype == torch.float32
        assert {out.terminated.dtype, out.truncated.dtype, out.nonfinite.dtype} == {torch.bool}
        assert not out.terminated.any()
        assert (out.truncated == last).all()
        torch.testing.assert_close(out.next_obs, _analytic_next_obs(prev_obs, action))
    # After the time limit, `obs` is a fresh episode's (v = 0), not the final obs.
    assert (out.obs - out.next_obs).abs().amax(dim=1).min() > 1e-3
    assert (out.obs[:, 2:] == 0).all() and (out.obs == env.obs).all()
    np.testing.assert_array_equal(env.state_dict()["step_count"], 0)


def test_random_counters_and_truncation_exactly_at_the_limit():
    env = _env(num_envs=64)
    env.reset(3)
    counts = env.state_dict()["step_count"]
    assert counts.dtype == np.int32
    assert counts.min() >= 0 and counts.max() < MAX_STEPS and len(np.unique(counts)) > 1
    zero = torch.zeros((64, 2))  # v stays 0 and x stays in [-1, 1]: nothing terminates
    for _ in range(2 * MAX_STEPS):
        out = env.step(zero)
        np.testing.assert_array_equal(out.truncated.numpy(), counts + 1 == MAX_STEPS)
        counts = np.where(counts + 1 == MAX_STEPS, 0, counts + 1)
        np.testing.assert_array_equal(env.state_dict()["step_count"], counts)


def test_termination_beats_truncation_and_resets():
    env = _env()
    env.reset(4, random_step_count=False)
    # Env 0 sits just inside the bound moving outwards, on the last step of its episode (set through
    # load_state_dict, which this also exercises).
    state = env.state_dict()
    state["raw.data.qpos"][0] = [BOUND - 0.05, 0.0]
    state["raw.data.qvel"][0] = [1.0, 0.0]
    state["raw.obs"][0] = state["obs"][0] = [BOUND - 0.05, 0.0, 1.0, 0.0]
    state["step_count"][0] = MAX_STEPS - 1
    env.load_state_dict(state)
    action = torch.zeros((NUM_ENVS, 2))
    action[0, 0] = 1.0
    out = env.step(action)
    np.testing.assert_array_equal(out.terminated.numpy(), np.arange(NUM_ENVS) == 0)
    assert not out.truncated.any()
    torch.testing.assert_close(out.next_obs[0], torch.tensor([BOUND + 0.05, 0.0, 1.0, 0.0]))
    assert out.obs[0, :2].abs().max() <= 1.0
    np.testing.assert_array_equal(env.state_dict()["step_count"], [0] + [1] * (NUM_ENVS - 1))


def test_nan_injection_is_contained_to_the_injected_envs():
    actions = _actions(5, 8)
    bad_envs, bad_step = [2, 5], 3
    injected = actions.clone()
    injected[bad_step, bad_envs, 1] = 2 * NAN_ABOVE

    def run(acts):
        env = _env()
        env.reset(6)
        return [(env.obs, env.step(action)) for action in acts]

    is_bad = torch.isin(torch.arange(NUM_ENVS), torch.tensor(bad_envs))
    for t, ((_, ref), (prev_obs, out)) in enumerate(zip(run(actions), run(injected))):
        for leaf in out:
            assert torch.isfinite(leaf.float()).all()
        assert (out.nonfinite == (is_bad & (t == bad_step))).all()
        keep = ~is_bad if t >= bad_step else slice(None)
        for got, want in zip(out, ref):
            assert (got[keep] == want[keep]).all(), f"step {t}"
        if t == bad_step:
            assert (out.terminated == (is_bad | ref.terminated)).all()
            assert not out.truncated[bad_envs].any() and (out.reward[bad_envs] == 0).all()
            assert (out.next_obs[bad_envs] == prev_obs[bad_envs]).all()
            assert (out.obs[bad_envs, 2:] == 0).all()  # a fresh episode


def test_nan_hidden_in_qpos_alone_is_caught():
    class HiddenNaN(ToyPointMassTorch):
        """Finite obs and reward over NaN physics, as an env with a clamped observation could give."""

        def step(self, state, action):
            state = super().step(state, action)
            return state._replace(obs=torch.nan_to_num(state.obs), reward=torch.nan_to_num(state.reward))

    env = BatchedContract(HiddenNaN(NUM_ENVS, nan_above=NAN_ABOVE), max_episode_steps=MAX_STEPS, name="t")
    env.reset(9)
    action = torch.zeros((NUM_ENVS, 2))
    action[1, 0] = 2 * NAN_ABOVE
    out = env.step(action)
    np.testing.assert_array_equal(out.nonfinite.numpy(), np.arange(NUM_ENVS) == 1)
    assert out.terminated[1] and np.isfinite(env.state_dict()["raw.data.qpos"]).all()


def test_state_dict_round_trip_continues_identically():
    actions = _actions(10, 12)
    env = _env()
    env.reset(11)
    for action in actions[:4]:
        env.step(action)
    saved = env.state_dict()
    first = [env.step(action) for action in actions[4:]]
    resumed = _env()
    resumed.load_state_dict(saved)
    for want, action in zip(first, actions[4:]):
        for got_leaf, want_leaf in zip(resumed.step(action), want):
            assert torch.equal(got_leaf, want_leaf)
    with pytest.raises(ValueError, match="missing"):
        resumed.load_state_dict({k: v for k, v in saved.items() if k != "generator"})


START = [0.5, -0.25]


class _FixedStartJax(ToyPointMass):
    def reset(self, key):
        qpos = jnp.array(START)
        return toy_dynamics(qpos, jnp.zeros(2), jnp.zeros(2))  # a zero step from rest: the reset state


class _FixedStartTorch(ToyPointMassTorch):
    def reset(self, generator=None, *, qpos=None):
        return super().reset(qpos=torch.tensor([START] * self.num_envs))


def test_torch_contract_matches_the_jax_contract_on_identical_inputs():
    # Both raw envs reset to the same start, so the contracts agree through auto-resets as well:
    # truncations, terminations (strong pushes) and a NaN injection.
    max_steps = 7
    jax_env = VecEnv(_FixedStartJax(nan_above=NAN_ABOVE), num_envs=NUM_ENVS, max_episode_steps=max_steps,
                     name="t")
    torch_env = BatchedContract(_FixedStartTorch(NUM_ENVS, nan_above=NAN_ABOVE), max_episode_steps=max_steps,
                                name="t")
    actions = 3 * _actions(12, 30)
    actions[9, 3, 0] = 2 * NAN_ABOVE
    state = jax_env.reset(jax.random.PRNGKey(0), random_step_count=False)
    torch_env.reset(0, random_step_count=False)
    step = jax.jit(jax_env.step)
    seen = np.zeros(3, bool)
    for action in actions:
        state, want = step(state, jnp.asarray(action.numpy()))
        got = torch_env.step(action)
        for field, got_leaf, want_leaf in zip(want._fields, got, want):
            np.testing.assert_allclose(got_leaf.numpy(), np.asarray(want_leaf), rtol=1e-5, atol=1e-6,
                                       err_msg=field)
        seen |= [got.terminated.any(), got.truncated.any(), got.nonfinite.any()]
    assert seen.all()


def test_make_torch_env_forwards_maniskill_and_imports_lazily(monkeypatch):
    calls = []
    fake = types.ModuleType("reppo_fast.envs.maniskill")
    fake.make_maniskill_env = lambda name, **kw: calls.append((name, kw)) or "env"
    monkeypatch.setitem(sys.modules, "reppo_fast.envs.maniskill", fake)
    env = make_torch_env("PickCube", num_envs=2, device="cpu", episode_length=9, obs_limit=1e3, foo=1)
    assert env == "env"
    assert calls == [("PickCube-v1", {"num_envs": 2, "device": "cpu", "episode_length": 9, "obs_limit": 1e3,
                                      "foo": 1})]
    code = "import sys, reppo_fast.envs; assert not {'torch', 'jax'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
