"""torch.compile(fullgraph=True) of the actor and critic losses with the Triton ops (custom ops, so the
graph has no break) gives the eager values and gradients. On the device the Triton kernels run on
(reppo_fast.process_env.triton_device): CUDA when they compile, else the CPU and Triton's interpreter."""


import numpy as np
import pytest
import torch

from reppo_fast.config import Config
from reppo_fast.kernels import bind
from reppo_fast.on_torch.reppo import losses as tl
from reppo_fast.on_torch.reppo import networks as tn
from reppo_fast.process_env import triton_device

pytest.importorskip("triton")

DEVICE = triton_device()

B, O, A, H, S = 8, 3, 2, 16, 4
CFG = Config().replace(actor_hidden=16, actor_hidden_blocks=2, critic_hidden=H, num_bins=21, v_min=0.0,
                       v_max=20.0, kl_samples=S, kl_target=0.05)


def _inputs():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    kernels = bind("torch", "triton")
    with torch.device(DEVICE):  # the networks' parameters, and hist(0) from the Triton kernel
        hist0 = kernels.hl_gauss_hist(torch.zeros(1), num_bins=CFG.reppo.num_bins, v_min=CFG.reppo.v_min,
                                      v_max=CFG.reppo.v_max)[0]
        actor = tn.init_actor(O, A, CFG.actor_hidden, CFG.actor_hidden_blocks, 0.05, 0.2)
        critic = tn.init_critic(O, A, H, hist0)

    def r(*shape):
        return torch.randn(*shape, generator=g).to(DEVICE)

    batch = tl.Batch(r(B, O), torch.tanh(r(B, A)), r(B), r(B) > 1.0, r(B) > 1.0, 10 + 3 * r(B), r(B, H),
                     0.5 * r(B, A), -1 + 0.3 * r(B, A))
    return kernels, actor, critic, batch, r(1 + S, B, A)


def test_compiled_losses_match_eager():
    kernels, actor, critic, batch, noise = _inputs()

    def losses(batch, noise):
        c_loss, _ = tl.critic_loss(critic, batch, kernels, CFG)
        a_loss, _ = tl.actor_loss(actor, critic, batch, noise[0], noise[1:], kernels, CFG)
        return c_loss, a_loss

    compiled = torch.compile(losses, fullgraph=True)
    eager_out, compiled_out = losses(batch, noise), compiled(batch, noise)
    params = list(critic.parameters()) + list(actor.parameters())
    for e, c in zip(eager_out, compiled_out):
        np.testing.assert_allclose(c.detach().cpu(), e.detach().cpu(), rtol=1e-5, atol=1e-6)
        ge = torch.autograd.grad(e, params, allow_unused=True, retain_graph=True)
        gc = torch.autograd.grad(c, params, allow_unused=True, retain_graph=True)
        for p, a, b in zip(params, ge, gc):
            # an unused parameter's gradient is None in eager and may be zeros when compiled
            a, b = (torch.zeros_like(p) if x is None else x for x in (a, b))
            np.testing.assert_allclose(b.cpu(), a.cpu(), rtol=1e-4, atol=1e-6)
