"""`--kernels pallas` on the JAX path (interpret mode on CPU): a few updates give the same losses as
`--kernels reference` from the same seed."""

import json

import numpy as np

from reppo_fast.config import Config
from reppo_fast.runner import run

TINY = dict(env="ToyPointMass", num_envs=4, num_steps=4, num_epochs=1, num_minibatches=2, actor_hidden=16,
            actor_hidden_blocks=2, critic_hidden=16, num_bins=21, v_min=0.0, v_max=100.0, kl_samples=4,
            num_eval_envs=2, eval_interval=100, checkpoint_interval=100, progress=False, total_steps=2 * 16)


def _metrics(tmp_path, kernels):
    run_dir = run(Config().replace(**TINY, kernels=kernels, run_dir=str(tmp_path / kernels)))
    assert json.loads((run_dir / "meta.json").read_text())["kernels"] == {
        op: kernels for op in ("tanh_normal", "hl_gauss_ce", "lambda_returns")}
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_pallas_kernels_train_with_the_reference_losses(tmp_path):
    reference, pallas = _metrics(tmp_path, "reference"), _metrics(tmp_path, "pallas")
    assert len(reference) == len(pallas) == 2
    for r, p in zip(reference, pallas):
        for key in ("critic/loss", "critic/ce", "actor/loss", "actor/kl", "actor/entropy", "train/returns"):
            np.testing.assert_allclose(p[key], r[key], rtol=1e-4, atol=1e-5, err_msg=key)
