"""--matmul-precision: the networks' float32 matmuls at the chosen precision on both frameworks, the physics
at its own, and the choice recorded in meta.json. A CPU computes float32 either way, so the JAX side is
checked in the lowered program (the precision every dot_general carries) rather than in numbers."""

import json
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import pytest
import torch

from reppo_fast.config import Config, ConfigError, validate
from reppo_fast.envs.contract_jax import VecEnv
from reppo_fast.precision import matmul_precision, set_matmul_precision
from reppo_fast.runner import _build, run

TINY = dict(env="ToyPointMass", num_envs=8, num_steps=4, num_epochs=1, num_minibatches=2, actor_hidden=16,
            critic_hidden=16, critic_hidden_blocks=2, num_bins=21, v_min=0.0, v_max=100.0,
            num_eval_envs=2, progress=False)
XLA_NAME = {"tf32": "HIGH", "float32": "HIGHEST"}


def _dot_precisions(text: str) -> set[str]:
    return set(re.findall(r"dot_general.*?precision = \[(\w+), \w+\]", text))


@pytest.mark.parametrize("algo", ["reppo", "ppo"])
@pytest.mark.parametrize("precision", ["tf32", "float32"])
def test_jax_iteration_runs_every_network_matmul_at_the_chosen_precision(algo, precision):
    cfg = Config().replace(**TINY, algo=algo, matmul_precision=precision)
    cfg, trainer, *_ = _build(cfg)
    state = trainer.init_state(0)
    assert _dot_precisions(trainer.iteration.lower(state).as_text()) == {XLA_NAME[precision]}
    evaluate = trainer._evaluate.lower(state.actor, state.rollout.norm, jax.random.PRNGKey(0)).as_text()
    assert _dot_precisions(evaluate) == {XLA_NAME[precision]}


class _MatmulPhysics:
    """A raw env whose step is one matmul: where the physics' precision shows in the program."""
    observation_size, action_size = 2, 2

    def reset(self, key):
        return _State(jnp.zeros(2), jnp.zeros(()), jnp.zeros(()))

    def step(self, state, action):
        return _State(action @ jnp.eye(2), jnp.zeros(()), jnp.zeros(()))


class _State(NamedTuple):
    obs: jax.Array
    reward: jax.Array
    done: jax.Array


def test_physics_keeps_its_precision_inside_the_networks_context():
    env = VecEnv(_MatmulPhysics(), num_envs=3, max_episode_steps=5, name="matmul")
    state = env.reset(jax.random.PRNGKey(0))

    def step(state, action):
        with matmul_precision("tf32"):
            return env.step(state, action @ jnp.eye(2))  # one network-like dot, then the physics

    text = jax.jit(step).lower(state, jnp.ones((3, 2))).as_text()
    assert sorted(re.findall(r"precision = \[(\w+), \w+\]", text)) == ["DEFAULT", "HIGH"]


def test_torch_setting_follows_the_field():
    before = torch.get_float32_matmul_precision()
    try:
        set_matmul_precision("tf32")
        assert torch.get_float32_matmul_precision() == "high"
        set_matmul_precision("float32")
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_meta_json_records_the_precision(tmp_path, framework):
    cfg = Config().replace(**TINY, framework=framework, matmul_precision="float32",
                           total_steps=32, run_dir=str(tmp_path / framework))
    before = torch.get_float32_matmul_precision()
    try:
        meta = json.loads((run(cfg) / "meta.json").read_text())
    finally:
        torch.set_float32_matmul_precision(before)
    assert meta["matmul_precision"]["networks"] == "float32"


def test_an_unknown_precision_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match="matmul_precision"):
        validate(Config().replace(matmul_precision="bf16"))
