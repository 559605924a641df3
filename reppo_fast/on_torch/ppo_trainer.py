"""PPO on the PyTorch path, the twin of on_jax.ppo_trainer with TorchReppo's host-loop interface.

The state, checkpoints, evaluation and compile/CUDA-graph policy are TorchReppo's: the policy is `actor`,
the value network `critic`. One joint loss per minibatch; each network steps its own Adam (the parts of
the loss have disjoint parameters, so this equals one Adam over both when unclipped).
"""

from __future__ import annotations

import torch

from reppo_fast.on_torch import ppo_networks as nets
from reppo_fast.on_torch.minibatches import mean_metrics, minibatches
from reppo_fast.on_torch.ppo_losses import PpoBatch, ppo_loss
from reppo_fast.on_torch.ppo_rollout import act, bootstrap, gae, rollout
from reppo_fast.on_torch.trainer import TorchReppo, TrainState, clip_grads_, train_metrics
from reppo_fast.profiling import NO_RANGES, Ranges


class TorchPpo(TorchReppo):
    """TorchReppo's construction, description and checkpoint codec, with PPO's state, rollout and update."""

    def __init__(self, cfg, env, eval_env, kernels, device, ranges: Ranges = NO_RANGES):
        super().__init__(cfg, env, eval_env, kernels, device, ranges, act_fn=act, bootstrap_fn=bootstrap)

    def init_networks(self) -> tuple[nets.Actor, nets.Critic]:
        cfg, env = self.cfg, self.env
        return (nets.Actor(env.obs_size, env.action_size, cfg.actor_hidden, cfg.actor_layers),
                nets.Critic(env.obs_size, cfg.critic_hidden, cfg.critic_layers))

    @staticmethod
    def policy_mean(actor, obs):
        return nets.actor_apply(actor, obs)[0]

    def iteration(self, state: TrainState):
        cfg, kernels, ranges = self.cfg, self.kernels, self.ranges
        with ranges("rollout"):
            carry, data, stats = rollout(state.actor, state.critic, state.rollout, self.env, state.generator,
                                         kernels, cfg, self.act, self.bootstrap)
        with ranges("returns"):
            advantage, returns = gae(data, kernels, cfg)
        with ranges("update"):
            flat = (x.reshape((-1,) + x.shape[2:]) for x in (data.obs, data.raw_action, data.log_prob,
                                                              advantage, returns))
            metrics = self._update(state, PpoBatch(*flat))
        metrics.update({**train_metrics(stats, data.reward, returns), **self.env.episode_metrics()})
        state.rollout, state.iteration = carry, state.iteration + 1
        return state, metrics

    def _update(self, state: TrainState, batch: PpoBatch) -> dict:
        cfg = self.cfg
        shape = (batch.obs.shape[0] // cfg.num_minibatches, batch.raw_action.shape[-1])
        history = []
        for mb in minibatches(batch, cfg.num_epochs, cfg.num_minibatches, state.generator):
            noise = torch.randn(shape, device=self.device, generator=state.generator)
            history.append(self.update_step(state, mb, noise))
        return mean_metrics(history)

    def _update_step(self, state: TrainState, mb: PpoBatch, noise: torch.Tensor) -> dict:
        """One joint PPO step; noise [B, A] draws the entropy sample."""
        cfg = self.cfg
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss, metrics = ppo_loss(state.actor, state.critic, mb, noise, self.kernels, cfg)
        a_params, c_params = list(state.actor.parameters()), list(state.critic.parameters())
        grads = list(torch.autograd.grad(loss, a_params + c_params))
        a_norm = clip_grads_(grads[:len(a_params)], cfg.max_grad_norm)
        c_norm = clip_grads_(grads[len(a_params):], cfg.max_grad_norm)
        for p, g in zip(a_params + c_params, grads):
            p.grad = g
        state.actor_opt.step()
        state.critic_opt.step()
        return {"loss": loss.detach(), "actor/grad_norm": a_norm, "critic/grad_norm": c_norm, **metrics}
