"""ManiSkillEnv's contract logic (time limits, sanitising, metrics) over a scripted fake simulator:
needs neither ManiSkill nor Vulkan, so it runs everywhere. The real simulator: test_maniskill.py."""

from __future__ import annotations

import pytest
import torch

from reppo_fast.envs.maniskill import ManiSkillEnv
from reppo_fast.envs.maniskill_sim import Advance

N, O, A = 3, 4, 2


class FakeSim:
    """ManiSkillSim's interface. Obs rows are (env index, episode number, step in episode, 0); the
    test scripts which envs terminate, succeed or blow up on the next advance()."""

    num_envs, obs_size, action_size = N, O, A
    device = torch.device("cpu")
    control_mode = "fake"

    def __init__(self) -> None:
        self.episode = torch.zeros(N)
        self.t = torch.zeros(N)
        self.terminate = torch.zeros(N, dtype=torch.bool)
        self.succeed = torch.zeros(N, dtype=torch.bool)
        self.blow_up = torch.zeros(N, dtype=torch.bool)
        self.time_up_seen: list[torch.Tensor] = []
        self.closed = False

    def _obs(self) -> torch.Tensor:
        return torch.stack([torch.arange(N, dtype=torch.float32), self.episode, self.t, torch.zeros(N)], 1)

    def reset(self, seed: int) -> torch.Tensor:
        self.episode += 1
        self.t.zero_()
        return self._obs()

    def advance(self, action: torch.Tensor, time_up: torch.Tensor) -> Advance:
        assert action.shape == (N, A)
        self.time_up_seen.append(time_up.clone())
        self.t += 1
        next_obs = self._obs()
        next_obs[self.blow_up, 3] = torch.nan
        reward = torch.where(self.blow_up, torch.inf, torch.ones(N))
        nonfinite = self.blow_up.clone()
        ended = self.terminate | nonfinite | time_up
        self.episode += ended
        self.t[ended] = 0
        obs = torch.where(ended[:, None], self._obs(), next_obs)
        return Advance(next_obs, reward, self.terminate.clone(), self.succeed.clone(), nonfinite, obs)

    def close(self) -> None:
        self.closed = True


def make(max_episode_steps: int = 5) -> tuple[ManiSkillEnv, FakeSim]:
    sim = FakeSim()
    return ManiSkillEnv(sim, name="Fake-v1", max_episode_steps=max_episode_steps, sim_backend="fake"), sim


def test_step_before_reset_raises():
    env, _ = make()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(N, A))


def test_random_step_counts_are_seeded_and_in_range():
    env, _ = make(max_episode_steps=7)
    env.reset(3)
    counts = env._step_count.clone()
    assert counts.dtype == torch.int32 and bool(((counts >= 0) & (counts < 7)).all())
    env.reset(3)
    assert torch.equal(env._step_count, counts)
    env.reset(3, random_step_count=False)
    assert torch.equal(env._step_count, torch.zeros(N, dtype=torch.int32))


def test_truncation_keeps_true_final_obs_and_resets_counter():
    env, sim = make(max_episode_steps=2)
    env.reset(0, random_step_count=False)
    first = env.step(torch.zeros(N, A))
    assert not first.truncated.any() and torch.equal(first.obs, first.next_obs)
    second = env.step(torch.zeros(N, A))
    assert second.truncated.all() and not second.terminated.any()
    assert torch.equal(second.next_obs[:, 2], torch.full((N,), 2.0))  # step 2 of the old episode
    assert torch.equal(second.obs[:, 2], torch.zeros(N))             # the new episode's first obs
    assert env.obs is second.obs
    assert [t.tolist() for t in sim.time_up_seen] == [[False] * N, [True] * N]


def test_terminated_is_not_truncated_and_success_is_counted():
    env, sim = make(max_episode_steps=1)  # every step is a time limit too: terminated must win
    env.reset(0, random_step_count=False)
    sim.terminate[:] = torch.tensor([True, True, False])
    sim.succeed[:] = torch.tensor([True, False, False])
    step = env.step(torch.zeros(N, A))
    assert step.terminated.tolist() == [True, True, False]
    assert step.truncated.tolist() == [False, False, True]
    assert env.episode_metrics() == {"env/success_rate": pytest.approx(1 / 3), "env/episodes": 3.0}
    assert env.episode_metrics() == {}


def test_nonfinite_is_sanitised_terminated_and_not_a_success():
    env, sim = make()
    env.reset(0, random_step_count=False)
    acted_on = env.obs.clone()
    sim.blow_up[0] = sim.succeed[0] = True
    step = env.step(torch.zeros(N, A))
    assert step.nonfinite.tolist() == [True, False, False]
    assert step.terminated.tolist() == [True, False, False] and not step.truncated.any()
    assert torch.isfinite(step.next_obs).all() and torch.isfinite(step.reward).all()
    assert torch.equal(step.next_obs[0], acted_on[0]) and step.reward[0] == 0.0
    assert torch.equal(step.reward[1:], torch.ones(N - 1))
    assert env._step_count.tolist() == [0, 1, 1]
    assert env.episode_metrics() == {"env/success_rate": 0.0, "env/episodes": 1.0}


def test_state_dict_is_unsupported_with_a_reason_and_close_is_idempotent():
    env, sim = make()
    env.reset(0)
    with pytest.raises(NotImplementedError, match="fresh episodes"):
        env.state_dict()
    with pytest.raises(NotImplementedError, match="fresh episodes"):
        env.load_state_dict({})
    env.close()
    env.close()
    assert sim.closed
