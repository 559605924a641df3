"""The torch rollout over static buffers: per env step, ONE graph-safe call (on_torch/cuda_graph.py) that
bootstraps step t and acts for step t + 1.

A torch env is stepped from Python (it is stateful, and may be JAX physics behind DLPack or ManiSkill), so
the rollout alternates the env and the networks. Bootstrap(t) needs the env's output of step t and
act(t + 1) needs its observation: both wait on the same env step, so they are one call, `middle`, which
writes the transition into row t of the preallocated storage [T, N, ...] (a device step counter indexes
it: one captured graph serves every t) and leaves the next action in a static buffer the env reads.
`first` acts for step 0 and `last` bootstraps step T - 1. The host loop is then, per step: env.step, copy
its output into the static input buffers (one foreach launch), one call. With CUDA graphs each call is
one replay; on a CPU the same functions run eagerly.

Randomness is drawn inside the calls from the trainer's generator in the order the eager rollout drew it
(step t's noise, then step t + 1's), so the rollout's numbers do not depend on the capture.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from reppo_fast.envs.contract_torch import EnvStep, bootstrap_terminations
from reppo_fast.on_torch.common import (
    NormState,
    episode_stats,
    norm_init,
    norm_merge,
    norm_pool,
    norm_update,
)
from reppo_fast.on_torch.cuda_graph import CudaCapture, Graphed, static_copy, write_

STATS = ("episode_return_sum", "episodes", "nonfinite")


class Acting(NamedTuple):
    """What act(t) leaves for bootstrap(t) and the env: static buffers."""
    obs: torch.Tensor     # [N, O] normalised observation acted on
    action: torch.Tensor  # [N, A] the action sent to the env
    acted: object         # the algorithm's extra acting outputs (a NamedTuple of tensors, or None)


class StaticRollout:
    """cfg.num_steps steps of the algorithm's acting and bootstrap around env.step, over static buffers.

    The carried state lives in buffers updated in place: `norm` (the normaliser), `ep_return` (each env's
    running return); the results in `storage` (the transitions [T, N, ...]) and `stats` (the ended
    episodes' statistics). `run()` does one rollout."""

    def __init__(self, algo, act, bootstrap, env, actor, critic, norm: NormState, ep_return: torch.Tensor,
                 generator: torch.Generator, kernels, cfg, dp, graphs: bool, capture=CudaCapture):
        """act, bootstrap: the algorithm's (possibly compiled) functions; norm, ep_return: the start values
        (copied into the buffers); graphs: capture each call as a CUDA graph (`capture`: how)."""
        self.algo, self.act, self.bootstrap, self.env = algo, act, bootstrap, env
        self.actor, self.critic, self.generator, self.kernels, self.cfg, self.dp = (
            actor, critic, generator, kernels, cfg, dp)
        device = env.device
        self.norm = static_copy(norm)
        self.ep_return = static_copy(ep_return)
        # The rollout-start normaliser and this rank's own observations' statistics (dp > 1: pooled at the
        # end, on_torch/trainer.py _rollout explains).
        self.pooled = cfg.obs_norm and dp.world_size > 1
        self.start_norm = static_copy(norm) if self.pooled else None
        self.seen = norm_init(env.obs_size, device) if self.pooled else None
        self.stats = {name: torch.zeros((), device=device) for name in STATS}
        self.t = torch.zeros(1, dtype=torch.long, device=device)
        self.inputs = EnvStep(*(torch.zeros(env.num_envs, *shape, dtype=dtype, device=device)
                                for shape, dtype in (((env.obs_size,), torch.float32),
                                                     ((env.obs_size,), torch.float32), ((), torch.float32),
                                                     ((), torch.bool), ((), torch.bool), ((), torch.bool))))
        self.noise = self.current = self.storage = None  # made by the first (eager) call
        self.first, self.middle, self.last = (Graphed(fn, enabled=graphs, generators=(generator,),
                                                      capture=capture)
                                               for fn in (self._first, self._middle, self._last))

    def run(self) -> None:
        """One rollout: storage, stats, norm and ep_return hold its results."""
        env, cfg = self.env, self.cfg
        self.inputs.obs.copy_(env.obs)
        self.first()
        for t in range(cfg.num_steps):
            out = env.step(self.current.action)
            if cfg.bootstrap_terminations:
                out = bootstrap_terminations(out)
            write_(self.inputs, out)
            (self.middle if t < cfg.num_steps - 1 else self.last)()

    # --- the graph-safe calls -------------------------------------------------------------------------

    @torch.no_grad()
    def _first(self) -> None:
        """Act for step 0 on inputs.obs, with the counters reset."""
        self.t.zero_()
        for value in self.stats.values():
            value.zero_()
        if self.pooled:
            write_(self.start_norm, self.norm)
            write_(self.seen, norm_init(self.env.obs_size, self.env.device))
        self._draw_noise()
        self._act()

    @torch.no_grad()
    def _middle(self) -> None:
        """Bootstrap step t, then act for step t + 1 on the env's next observation."""
        self._bootstrap()
        self.t.add_(1)
        self._draw_noise()
        self._act()

    @torch.no_grad()
    def _last(self) -> None:
        """Bootstrap step T - 1; on W > 1 ranks, pool the normaliser over every rank's observations."""
        self._bootstrap()
        if self.pooled:
            write_(self.norm, norm_merge(self.start_norm, norm_pool(self.seen, self.dp)))

    def _draw_noise(self) -> None:
        noise = self.algo.step_noise(self.generator, self.env.num_envs, self.env.action_size)
        if self.noise is None:
            self.noise = noise
        else:
            self.noise.copy_(noise)

    def _act(self) -> None:
        obs_raw = self.inputs.obs
        if self.pooled:
            write_(self.seen, norm_update(self.seen, obs_raw))
        norm, obs, action, acted = self.act(self.actor, self.critic, self.norm, obs_raw, self.noise,
                                            self.kernels, self.cfg)
        write_(self.norm, norm)
        if self.current is None:
            self.current = static_copy(Acting(obs, action, acted))
        else:
            write_(self.current, Acting(obs, action, acted))

    def _bootstrap(self) -> None:
        c, out = self.current, self.inputs
        transition = self.bootstrap(self.actor, self.critic, self.norm, c.obs, c.action, c.acted, out,
                                    self.noise, self.kernels, self.cfg)
        if self.storage is None:
            self.storage = type(transition)(*(torch.zeros((self.cfg.num_steps, *x.shape), dtype=x.dtype,
                                                          device=x.device) for x in transition))
        for row, value in zip(self.storage, transition):
            row.index_copy_(0, self.t, value.unsqueeze(0))
        self.ep_return.copy_(episode_stats(self.stats, self.ep_return, out.reward, out.terminated,
                                           out.truncated, out.nonfinite))
