"""REPPO on the PyTorch path: the twin of on_jax.trainer with the same host-loop interface.

Per iteration: rollout, lambda-returns, then epochs x minibatches of `update_step` (critic step, then actor
step with the just-updated critic). `update_step` and the acting functions are pure tensor code with no
.item() and no host sync, so torch.compile (and, on CUDA, graph capture) can take them whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reppo_fast.on_torch import networks as nets
from reppo_fast.on_torch.checkpointing import load_state_arrays, state_arrays
from reppo_fast.on_torch.compiling import compile_mode, compiled
from reppo_fast.on_torch.losses import Batch, actor_loss, critic_loss
from reppo_fast.on_torch.minibatches import mean_metrics, minibatches
from reppo_fast.on_torch.normalizer import norm_init
from reppo_fast.on_torch.rollout import RolloutCarry, act, bootstrap, evaluate, rollout
from reppo_fast.precision import set_matmul_precision
from reppo_fast.profiling import NO_RANGES, Ranges, instrument_kernels


@dataclass
class TrainState:
    actor: nets.Actor
    critic: nets.Critic
    actor_opt: torch.optim.Adam
    critic_opt: torch.optim.Adam
    rollout: RolloutCarry
    generator: torch.Generator  # policy and minibatch noise
    env: object                 # the TorchVecEnv (stateful; checkpointed through its state_dict)
    iteration: int = 0


def clip_grads_(grads: list[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """optax.clip_by_global_norm in place: g *= max_norm / max(||g||, max_norm) (max_norm None: no clip).
    Returns ||g||."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if max_norm is not None:
        torch._foreach_mul_(grads, max_norm / torch.clamp(norm, min=max_norm))
    return norm


def step_optimizer(loss, params, opt, max_norm) -> torch.Tensor:
    """Gradients of loss, clipped (clip_grads_), then one optimiser step. Returns the gradient norm."""
    grads = list(torch.autograd.grad(loss, params))
    norm = clip_grads_(grads, max_norm)
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()
    return norm


def train_metrics(stats: dict, reward, returns) -> dict:
    """The rollout's episode statistics, mean reward and mean return, as logged by every algorithm."""
    episodes = stats["episodes"].clamp(min=1)
    return {"train/episode_return": stats["episode_return_sum"] / episodes,
            "train/episodes": stats["episodes"], "train/nonfinite": stats["nonfinite"],
            "train/reward": reward.mean(), "train/returns": returns.mean()}


def eval_seed(seed: int, iteration: int) -> int:
    """The evaluation env seed: a function of (seed, iteration) only, so a resumed run evaluates alike."""
    return (seed ^ 0x5EED) * 100_003 + iteration


class TorchReppo:
    """Holds config, envs and kernels; `iteration` mutates the TrainState in place and returns it."""

    def __init__(self, cfg, env, eval_env, kernels, device, ranges: Ranges = NO_RANGES, act_fn=act,
                 bootstrap_fn=bootstrap):
        """act_fn, bootstrap_fn: the acting functions to compile (PPO passes its own)."""
        self.cfg, self.env, self.eval_env, self.device = cfg, env, eval_env, device
        set_matmul_precision(cfg.matmul_precision)
        compile_on, mode = compile_mode(cfg, device)
        # An NVTX call inside a compiled region breaks the graph (the profile would time another program),
        # so with compile on, update/critic, update/actor and op/<name> are left out: `--compile off`
        # shows them.
        self.ranges, self.inner_ranges = ranges, NO_RANGES if compile_on else ranges
        self.kernels = instrument_kernels(kernels, self.inner_ranges if ranges.enabled else None)
        # reduce-overhead = CUDA-graph trees: static shapes and no host syncs make the whole step capturable.
        # The update step calls autograd.grad and the optimiser: dynamo may break the graph there, so it
        # is compiled without fullgraph; acting is plain tensor code and must compile whole.
        self.update_step = compiled(self._update_step, cfg, device, fullgraph=False)
        self.act = compiled(act_fn, cfg, device, fullgraph=True)
        self.bootstrap = compiled(bootstrap_fn, cfg, device, fullgraph=True)
        self.compiled, self.mode = compile_on, mode

    def describe(self) -> dict:
        return {"torch": torch.__version__, "device": str(self.device), "compiled": self.compiled,
                "compile_mode": self.mode, "bf16": self.cfg.bf16,
                "matmul_precision": {"networks": self.cfg.matmul_precision,
                                     "torch_float32_matmul": torch.get_float32_matmul_precision()}}

    def init_state(self, seed: int) -> TrainState:
        env, device = self.env, self.device
        torch.manual_seed(seed)  # network initialisation
        # Built where they train: every tensor init_networks makes (hist(0) through the bound kernel, which
        # on CUDA is a Triton kernel that cannot read a CPU tensor) is on the trainer's device.
        with torch.device(device):
            actor, critic = self.init_networks()
        actor_opt, critic_opt = self.make_optimizer(actor), self.make_optimizer(critic)
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        env.reset(seed)
        carry = RolloutCarry(norm_init(env.obs_size, device), torch.zeros(env.num_envs, device=device))
        return TrainState(actor, critic, actor_opt, critic_opt, carry, generator, env)

    def init_networks(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(actor with the multipliers, critic): the part of the state each algorithm owns."""
        cfg, env = self.cfg, self.env
        hist0 = self.kernels.hl_gauss_hist(torch.zeros(1, device=self.device), num_bins=cfg.num_bins,
                                           v_min=cfg.v_min, v_max=cfg.v_max, sigma_ratio=cfg.sigma_ratio)[0]
        return (nets.init_actor(env.obs_size, env.action_size, cfg.actor_hidden, cfg.actor_layers,
                                cfg.alpha_init, cfg.beta_init),
                nets.init_critic(env.obs_size, env.action_size, cfg.critic_hidden, hist0))

    def make_optimizer(self, module: torch.nn.Module) -> torch.optim.Adam:
        """Adam; on CUDA with capturable state and a tensor learning rate, so a CUDA graph can take the
        step."""
        capturable = self.device.type == "cuda"
        lr = torch.tensor(self.cfg.lr, device=self.device) if capturable else self.cfg.lr
        return torch.optim.Adam(module.parameters(), lr=lr, capturable=capturable)

    def evaluate(self, state: TrainState, seed: int, iteration: int) -> float:
        """Deterministic eval on fresh envs; the seed depends only on (seed, iteration): resumable."""
        return evaluate(lambda obs: self.policy_mean(state.actor, obs), state.rollout.norm, self.eval_env,
                        eval_seed(seed, iteration), self.cfg)

    @staticmethod
    def policy_mean(actor, obs):
        """The deterministic policy's pre-tanh action at normalised obs (what evaluation plays)."""
        return nets.actor_apply(actor.net, obs)[0]

    @staticmethod
    def to_arrays(state: TrainState) -> dict[str, np.ndarray]:
        return state_arrays(state)

    @staticmethod
    def from_arrays(template: TrainState, arrays: dict[str, np.ndarray]) -> TrainState:
        return load_state_arrays(template, arrays)

    def iteration(self, state: TrainState):
        cfg, kernels, ranges = self.cfg, self.kernels, self.ranges
        with ranges("rollout"):
            carry, data, stats = rollout(state.actor, state.critic, state.rollout, self.env, state.generator,
                                         kernels, cfg, self.act, self.bootstrap)
        with ranges("returns"):
            returns = kernels.lambda_returns(data.soft_reward, data.next_value, data.terminated,
                                             data.truncated, gamma=cfg.gamma, lmbda=cfg.lmbda)
        with ranges("update"):
            batch = self._flatten(state.actor, data, returns)
            metrics = self._update(state, batch)
        metrics.update({**train_metrics(stats, data.reward, returns), **self.env.episode_metrics()})
        state.rollout, state.iteration = carry, state.iteration + 1
        return state, metrics

    @torch.no_grad()
    def _flatten(self, actor, data, returns) -> Batch:
        flat = [x.reshape((-1,) + x.shape[2:]) for x in (*data, returns)]
        obs, action, reward, _, terminated, truncated, _, next_features, returns = flat
        # pi_old is the actor frozen at the start of the update phase.
        old_mean, old_log_std = nets.actor_apply(actor.net, obs, self.cfg.log_std_min, self.cfg.log_std_max)
        return Batch(obs, action, reward, terminated, truncated, returns, next_features, old_mean, old_log_std)

    def _update(self, state: TrainState, batch: Batch) -> dict:
        cfg = self.cfg
        size, action_size = batch.obs.shape[0] // cfg.num_minibatches, batch.action.shape[-1]
        kl_samples = cfg.kl_samples if cfg.kl_estimator == "sampled" else 0
        history = []
        for mb in minibatches(batch, cfg.num_epochs, cfg.num_minibatches, state.generator):
            noise = torch.randn(1 + kl_samples, size, action_size, device=self.device,
                                generator=state.generator)
            history.append(self.update_step(state, mb, noise))
        return mean_metrics(history)

    def _update_step(self, state: TrainState, mb: Batch, noise: torch.Tensor) -> dict:
        """One critic step then one actor step; noise [1+S, B, A]: the action draw, then the KL draws."""
        cfg, kernels, ranges = self.cfg, self.kernels, self.inner_ranges
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
        with ranges("update/critic"):
            with autocast:
                c_loss, c_metrics = critic_loss(state.critic, mb, kernels, cfg)
            c_norm = step_optimizer(c_loss, list(state.critic.parameters()), state.critic_opt,
                                    cfg.max_grad_norm)
        old_noise = noise[1:] if cfg.kl_estimator == "sampled" else None
        with ranges("update/actor"):
            with autocast:
                a_loss, a_metrics = actor_loss(state.actor, state.critic, mb, noise[0], old_noise, kernels,
                                               cfg)
            a_norm = step_optimizer(a_loss, list(state.actor.parameters()), state.actor_opt,
                                    cfg.max_grad_norm)
        return {"critic/loss": c_loss.detach(), "actor/loss": a_loss.detach(), "critic/grad_norm": c_norm,
                "actor/grad_norm": a_norm, **c_metrics, **a_metrics}
