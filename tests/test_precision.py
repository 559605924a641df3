"""--precision: the networks' matmuls at the chosen precision on both frameworks (acting, update and
evaluation), the physics at its own, the choice recorded in meta.json, and runs saved under the fields it
replaced (`matmul_precision`, `torch.bf16`) still resuming. A CPU computes tf32 as float32, so the JAX side
of tf32/float32 is checked in the lowered program (the precision every dot_general carries); bf16's numbers
are tests/test_dense.py's, its learning tests/test_precision_learning.py's."""

import json
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reppo_fast.config import Config, ConfigError, validate
from reppo_fast.envs.contract_jax import VecEnv
from reppo_fast.on_torch.dense import Dense
from reppo_fast.precision import matmul_precision, set_matmul_precision
from reppo_fast.runner import _build, run
from reppo_fast.train import main, parse_args

TINY = dict(env="ToyPointMass", num_envs=8, num_steps=4, num_epochs=1, num_minibatches=2, actor_hidden=16,
            critic_hidden=16, critic_hidden_blocks=2, num_bins=21, v_min=0.0, v_max=100.0,
            num_eval_envs=2, progress=False)
BF16_DOT = "algorithm = <lhs_precision_type = bf16, rhs_precision_type = bf16, accumulation_type = f32"


def _dot_precisions(text: str) -> set[str]:
    """Each dot_general's precision: HIGH (tf32), HIGHEST (float32), or BF16 for the bf16 algorithm."""
    return {"BF16" if BF16_DOT in line else re.search(r"precision = \[(\w+), \w+\]", line).group(1)
            for line in re.findall(r"dot_general.*", text)}


@pytest.fixture
def torch_settings():
    """Restore torch's process-wide matmul settings after a test that builds a trainer."""
    before = (torch.get_float32_matmul_precision(),
              torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction)
    yield
    torch.set_float32_matmul_precision(before[0])
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = before[1]


@pytest.mark.parametrize("algo", ["reppo", "ppo", "rpo"])
@pytest.mark.parametrize("precision, xla", [("tf32", "HIGH"), ("float32", "HIGHEST"), ("bf16", "BF16")])
def test_jax_iteration_and_evaluation_run_every_network_matmul_at_the_chosen_precision(algo, precision, xla):
    cfg = Config().replace(**TINY, algo=algo, precision=precision)
    cfg, trainer, *_ = _build(cfg)
    state = trainer.init_state(0)
    assert _dot_precisions(trainer.iteration.lower(state).as_text()) == {xla}
    evaluate = trainer._evaluate.lower(state.actor, state.rollout.norm, jax.random.PRNGKey(0)).as_text()
    assert _dot_precisions(evaluate) == {xla}


@pytest.mark.usefixtures("torch_settings")
@pytest.mark.parametrize("algo", ["reppo", "ppo", "rpo"])
def test_torch_networks_hold_the_chosen_precision(algo):
    """Every Linear of the networks the torch trainer builds (the RPO target critics too) is at cfg.precision:
    the modules carry it into acting, the update and evaluation."""
    cfg, trainer, *_ = _build(Config().replace(**TINY, algo=algo, framework="torch", precision="bf16"))
    state = trainer.init_state(0)
    modules = [m for net in (state.actor, state.critic) for m in net.modules()]
    linears = [m for m in modules if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, Dense) and m.precision == "bf16" for m in linears)
    assert all(m.precision == "bf16" for m in modules if hasattr(m, "precision"))
    assert not any(type(m) is torch.nn.Linear for m in modules)


def _reppo_pair(precision, seed=0, obs_size=5, action_size=3, hidden=32):
    from reppo_fast.kernels import bind
    from reppo_fast.on_jax.reppo import networks as jn
    from reppo_fast.on_torch.reppo import networks as tn

    hist0 = bind("jax", "reference").hl_gauss_hist(jnp.zeros((1,)), num_bins=21, v_min=0.0, v_max=10.0)[0]
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    j_actor = {"net": jn.init_actor(k[0], obs_size, action_size, hidden, 2), "log_alpha": jnp.log(0.1),
               "log_beta": jnp.log(0.1)}
    j_critic = jn.init_critic(k[1], obs_size, action_size, hidden, hist0)
    t_actor = tn.init_actor(obs_size, action_size, hidden, 2, 0.1, 0.1, precision)
    t_critic = tn.init_critic(obs_size, action_size, hidden, torch.tensor(np.asarray(hist0)), precision)
    tn.load_jax_params(t_actor, j_actor, t_critic, j_critic)
    obs = 2.0 * jax.random.normal(k[2], (64, obs_size))
    action = jnp.tanh(jax.random.normal(k[3], (64, action_size)))

    def jax_out():
        z = jn.critic_encode(j_critic, obs, action)
        return (*jn.actor_apply(j_actor["net"], obs), jn.critic_q_logits(j_critic, z),
                *jn.critic_predict(j_critic, z))

    with torch.no_grad():
        t_obs, t_action = (torch.tensor(np.asarray(a)) for a in (obs, action))
        z = tn.critic_encode(t_critic, t_obs, t_action)
        t_out = (*tn.actor_apply(t_actor.net, t_obs), tn.critic_q_logits(t_critic, z),
                 *tn.critic_predict(t_critic, z))
    with matmul_precision(precision):
        j_out = jax.jit(jax_out)()
    return [np.asarray(a, np.float64) for a in j_out], [a.double().numpy() for a in t_out]


@pytest.mark.usefixtures("float32_matmuls")
def test_bf16_networks_agree_across_frameworks_and_differ_from_float32():
    """The REPPO actor and critic heads from the same weights: torch's and JAX's bf16 outputs agree to
    within a few bf16 roundings carried through the RMSNorms, ten times closer than either is to float32
    (so both compute bf16, not float32)."""
    jax_bf16, torch_bf16 = _reppo_pair("bf16")
    jax_f32, _ = _reppo_pair("float32")
    for j, t, f in zip(jax_bf16, torch_bf16, jax_f32, strict=True):
        scale = np.abs(f).max()
        assert np.abs(j - t).max() <= 0.1 * np.abs(j - f).max() + 1e-6 * scale
        assert np.abs(j - f).max() >= 1e-4 * scale


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


@pytest.mark.parametrize("precision, network_dot", [("tf32", "HIGH"), ("bf16", "BF16")])
def test_physics_keeps_its_precision_inside_the_networks_context(precision, network_dot):
    env = VecEnv(_MatmulPhysics(), num_envs=3, max_episode_steps=5, name="matmul")
    state = env.reset(jax.random.PRNGKey(0))

    def step(state, action):
        with matmul_precision(precision):
            return env.step(state, action @ jnp.eye(2))  # one network-like dot, then the physics

    text = jax.jit(step).lower(state, jnp.ones((3, 2))).as_text()
    dots = re.findall(r"dot_general.*", text)
    assert len(dots) == 2 and _dot_precisions(dots[0]) == {network_dot}
    assert _dot_precisions(dots[1]) == {"DEFAULT"} and "algorithm" not in dots[1]


@pytest.mark.usefixtures("torch_settings")
@pytest.mark.parametrize("precision, float32_matmul", [("tf32", "high"), ("float32", "highest"),
                                                       ("bf16", "highest")])
def test_torch_settings_follow_the_field(precision, float32_matmul):
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True
    set_matmul_precision(precision)
    assert torch.get_float32_matmul_precision() == float32_matmul
    assert torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction is False


@pytest.mark.usefixtures("torch_settings")
@pytest.mark.parametrize("framework, setting", [("jax", ("jax_default_matmul_precision", "BF16_BF16_F32")),
                                                ("torch", ("torch_float32_matmul", "highest"))])
def test_meta_json_records_the_precision(tmp_path, framework, setting):
    cfg = Config().replace(**TINY, framework=framework, precision="bf16", total_steps=32,
                           run_dir=str(tmp_path / framework))
    meta = json.loads((run(cfg) / "meta.json").read_text())
    entry = meta["precision"]
    assert entry["networks"] == "bf16" and entry["matmul_dtype"] == "bfloat16"
    assert entry[setting[0]] == setting[1]
    assert ("physics" in entry) == (framework == "jax")


def test_an_unknown_precision_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match="precision"):
        validate(Config().replace(precision="fp16"))


@pytest.mark.parametrize("saved, precision", [
    ({"matmul_precision": "float32"}, "float32"),
    ({"matmul_precision": "tf32", "torch": {"bf16": False, "compile": "off"}}, "tf32"),
    ({"matmul_precision": "float32", "torch": {"bf16": True}}, "bf16"),
    ({"bf16": True, "matmul_precision": "tf32"}, "bf16"),  # the flat form of the runs before the groups
    ({"torch": {"bf16": False}}, "tf32")])
def test_configs_saved_before_precision_read_as_the_same_choice(saved, precision):
    cfg = Config.from_json(json.dumps({"env": "ToyPointMass", **saved}))
    assert cfg.precision == precision


def test_the_replaced_fields_name_precision():
    for old in ("matmul_precision", "bf16"):
        with pytest.raises(ConfigError, match=f"'{old}' is now 'precision'"):
            Config().replace(**{old: "float32"})


@pytest.mark.usefixtures("torch_settings")
def test_a_run_saved_with_torch_bf16_resumes_at_bf16(tmp_path):
    """A torch run whose config.json has the old fields (rewritten here as the code before issue 18 wrote
    them) resumes, at precision bf16 (meta.json stays the run's first)."""
    run_dir = tmp_path / "old"
    run(Config().replace(**TINY, framework="torch", total_steps=32, run_dir=str(run_dir)))
    saved = json.loads((run_dir / "config.json").read_text())
    saved["matmul_precision"] = saved.pop("precision")
    saved["torch"]["bf16"] = True
    (run_dir / "config.json").write_text(json.dumps(saved))
    cfg, resume = parse_args(["--resume", str(run_dir), "--total-steps", "64"])
    assert resume and cfg.precision == "bf16"
    assert main(["--resume", str(run_dir), "--total-steps", "64", "--no-progress"]) == 0
    assert (run_dir / "checkpoints").is_dir() and len(list((run_dir / "checkpoints").iterdir())) >= 2
