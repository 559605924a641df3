"""The torch TrainState as named numpy arrays for reppo_fast.checkpoint, and back.

Names: `actor.<param>`, `critic.<param>`, `actor_opt.<param index>.<exp_avg|exp_avg_sq|step>`, `norm.<field>`,
`ep_return`, `generator` (the RNG state bytes), `env.<key>` (the env's own state_dict), `iteration`.
Optimiser hyper-parameters are not saved: they come from the run's config.
"""

from __future__ import annotations

import numpy as np
import torch

from reppo_fast.on_torch.normalizer import NormState
from reppo_fast.on_torch.rollout import RolloutCarry


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def state_arrays(state) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for prefix, module in (("actor", state.actor), ("critic", state.critic)):
        out.update({f"{prefix}.{k}": _np(v) for k, v in module.state_dict().items()})
    for prefix, opt in (("actor_opt", state.actor_opt), ("critic_opt", state.critic_opt)):
        for index, slots in opt.state_dict()["state"].items():
            out.update({f"{prefix}.{index}.{k}": _np(v) if isinstance(v, torch.Tensor) else np.asarray(v)
                        for k, v in slots.items()})
    out.update({f"norm.{k}": _np(v) for k, v in state.rollout.norm._asdict().items()})
    out["ep_return"] = _np(state.rollout.ep_return)
    out["generator"] = _np(state.generator.get_state())
    try:
        out.update({f"env.{k}": np.asarray(v) for k, v in state.env.state_dict().items()})
    except NotImplementedError:
        pass  # e.g. ManiSkill: a resumed run starts fresh episodes (load_state_arrays says so)
    out["iteration"] = np.asarray(state.iteration, np.int64)
    return out


def _take(arrays: dict, name: str, like: torch.Tensor) -> torch.Tensor:
    if name not in arrays:
        raise ValueError(f"checkpoint lacks {name}: it was written by a different config or version")
    value = np.asarray(arrays[name])
    if value.shape != tuple(like.shape):
        raise ValueError(f"checkpoint entry {name} has shape {list(value.shape)}, "
                         f"expected {list(like.shape)}: the config differs from the checkpoint's")
    return torch.as_tensor(value, device=like.device).to(like.dtype)


@torch.no_grad()
def load_state_arrays(state, arrays: dict[str, np.ndarray]):
    """Load `arrays` into a freshly initialised `state` in place (checked name by name) and return it."""
    for prefix, module in (("actor", state.actor), ("critic", state.critic)):
        module.load_state_dict({k: _take(arrays, f"{prefix}.{k}", v) for k, v in module.state_dict().items()})
    for prefix, opt, module in (("actor_opt", state.actor_opt, state.actor),
                                ("critic_opt", state.critic_opt, state.critic)):
        saved = opt.state_dict()
        params = list(module.parameters())
        slots = {}
        for index in range(len(params)):
            keys = sorted({k.rsplit(".", 1)[1] for k in arrays if k.startswith(f"{prefix}.{index}.")})
            if keys:
                device = params[index].device
                slots[index] = {k: torch.as_tensor(arrays[f"{prefix}.{index}.{k}"], device=device) for k in keys}
        opt.load_state_dict({"state": slots, "param_groups": saved["param_groups"]})
    norm = NormState(*(_take(arrays, f"norm.{k}", v) for k, v in state.rollout.norm._asdict().items()))
    state.rollout = RolloutCarry(norm, _take(arrays, "ep_return", state.rollout.ep_return))
    # A generator's state is a CPU byte tensor whatever device the generator draws on.
    state.generator.set_state(torch.as_tensor(arrays["generator"], device="cpu"))
    state.iteration = int(arrays["iteration"])
    env_arrays = {k[len("env."):]: v for k, v in arrays.items() if k.startswith("env.")}
    if env_arrays:
        state.env.load_state_dict(env_arrays)
    else:
        print(f"note: {state.env.name} cannot save its physics state; the resumed run starts fresh episodes")
        state.env.reset(state.iteration)
        state.rollout = RolloutCarry(norm, torch.zeros_like(state.rollout.ep_return))
    return state
