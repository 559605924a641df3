"""PPO on the JAX path (the paper's baseline): one jitted function per iteration, like JaxReppo.

Per iteration: rollout, GAE through the `lambda_returns` op (once, with the acting value network, as in
CleanRL; Brax recomputes it per minibatch), then epochs x minibatches of one joint step on
ppo_loss. The state, checkpoints, evaluation and host loop are REPPO's: the policy is `actor`, the value
network `critic`.
"""

from __future__ import annotations

import jax
import optax

from reppo_fast.on_jax import ppo_networks as nets
from reppo_fast.on_jax.minibatches import scan_minibatches
from reppo_fast.on_jax.ppo_losses import PpoBatch, ppo_loss
from reppo_fast.on_jax.ppo_rollout import gae, rollout
from reppo_fast.on_jax.trainer import JaxReppo, TrainState, train_metrics


class JaxPpo(JaxReppo):
    """JaxReppo's construction, jitting, evaluation and checkpoint codec, with PPO's state, rollout and
    update."""

    def init_networks(self, k_actor, k_critic):
        cfg, env = self.cfg, self.env
        return (nets.init_actor(k_actor, env.obs_size, env.action_size, cfg.actor_hidden, cfg.actor_layers),
                nets.init_critic(k_critic, env.obs_size, cfg.critic_hidden, cfg.critic_layers))

    @staticmethod
    def policy_mean(actor, obs):
        return nets.actor_apply(actor, obs)[0]

    def _iteration(self, state: TrainState):
        cfg, kernels = self.cfg, self.kernels
        key, k_roll, k_update = jax.random.split(state.key, 3)
        with jax.named_scope("rollout"):
            carry, data, stats = rollout(state.actor, state.critic, state.rollout, k_roll, self.env, kernels,
                                         cfg)
        with jax.named_scope("returns"):
            advantage, returns = gae(data, kernels, cfg)
        with jax.named_scope("update"):
            batch = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]),
                                 PpoBatch(data.obs, data.raw_action, data.log_prob, advantage, returns))
            actor, critic, actor_opt, critic_opt, metrics = self._update(state, batch, k_update)
        metrics.update(train_metrics(stats, data.reward, returns))
        return TrainState(actor, critic, actor_opt, critic_opt, carry, key, state.iteration + 1), metrics

    def _update(self, state: TrainState, batch: PpoBatch, key):
        cfg, kernels, tx = self.cfg, self.kernels, self.tx
        shape = (batch.obs.shape[0] // cfg.num_minibatches, batch.raw_action.shape[-1])

        def minibatch(carry, mb, k):
            actor, critic, actor_opt, critic_opt = carry
            (loss, metrics), (a_grad, c_grad) = jax.value_and_grad(ppo_loss, argnums=(0, 1), has_aux=True)(
                actor, critic, mb, jax.random.normal(k, shape), kernels, cfg)
            # The loss's two parts have disjoint parameters: two Adams equal one over both (unclipped).
            a_upd, actor_opt = tx.update(a_grad, actor_opt, actor)
            c_upd, critic_opt = tx.update(c_grad, critic_opt, critic)
            metrics = {"loss": loss, "actor/grad_norm": optax.tree.norm(a_grad),
                       "critic/grad_norm": optax.tree.norm(c_grad), **metrics}
            return (optax.apply_updates(actor, a_upd), optax.apply_updates(critic, c_upd), actor_opt,
                    critic_opt), metrics

        carry = (state.actor, state.critic, state.actor_opt, state.critic_opt)
        carry, metrics = scan_minibatches(minibatch, carry, batch, key, cfg.num_epochs, cfg.num_minibatches)
        return (*carry, metrics)
