"""Several iterations per dispatch in the runner (cfg.iterations_per_dispatch): the dispatch sizes, checked
against a brute-force walk of the run, and a whole run that logs, evaluates and checkpoints exactly as one
iteration per dispatch does."""

import json
import random

import pytest

from reppo_fast.checkpoint import list_checkpoints
from reppo_fast.config import Config
from reppo_fast.runner import dispatch_size, run

TIME_KEYS = {"time/iteration_s", "time/elapsed_s", "time/env_steps_per_s", "wall_time"}


def _dispatches(cfg, start):
    ends, done = [], start
    while done < cfg.num_iterations:
        done += dispatch_size(cfg, done, start)
        ends.append(done)
    return ends


def test_dispatches_end_at_every_evaluation_checkpoint_and_capture_and_never_exceed_k():
    rng = random.Random(0)
    for _ in range(300):
        k, eval_every, ckpt_every = rng.randint(1, 9), rng.randint(1, 12), rng.randint(1, 30)
        iterations, start, warmup = rng.randint(1, 80), rng.randint(0, 20), rng.randint(0, 5)
        cfg = Config().replace(iterations_per_dispatch=k, eval_interval=eval_every,
                               checkpoint_interval=ckpt_every, profile_warmup=warmup, num_envs=8, num_steps=4,
                               num_minibatches=2, total_steps=iterations * 32)
        if start >= cfg.num_iterations:
            continue
        ends = _dispatches(cfg, start)
        sizes = [b - a for a, b in zip([start, *ends], ends)]
        assert sizes[0] == 1 and all(1 <= s <= k for s in sizes), sizes
        assert ends[-1] == cfg.num_iterations
        # Brute force: every iteration after which something must happen ends a dispatch.
        due = {i for i in range(start + 1, cfg.num_iterations + 1)
               if i % eval_every == 0 or i % ckpt_every == 0 or i == start + warmup}
        assert due <= set(ends), (due - set(ends), cfg.flat())
        # And no dispatch is cut short without a reason.
        for a, b in zip([start, *ends], ends):
            if a != start and b - a < k:
                assert b in due or b == cfg.num_iterations, (a, b)


TINY = dict(env="ToyPointMass", num_envs=8, num_steps=4, num_epochs=2, num_minibatches=2, actor_hidden=16,
            critic_hidden=16, num_bins=21, v_min=0.0, v_max=100.0, num_eval_envs=2, eval_interval=3,
            checkpoint_interval=4, progress=False, total_steps=7 * 32)


def _lines(run_dir, name):
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS}
            for line in (run_dir / name).read_text().splitlines()]


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_a_run_of_three_iterations_per_dispatch_logs_what_one_per_dispatch_does(tmp_path, framework):
    runs = {k: run(Config().replace(**TINY, framework=framework, iterations_per_dispatch=k,
                                    run_dir=str(tmp_path / f"k{k}")))
            for k in (1, 3)}
    one, three = _lines(runs[1], "metrics.jsonl"), _lines(runs[3], "metrics.jsonl")
    assert [line["iteration"] for line in three] == list(range(1, 8))
    assert three == one
    evals = [_lines(d, "eval.jsonl") for d in runs.values()]
    assert [line["iteration"] for line in evals[1]] == [3, 6, 7]
    assert evals[0] == evals[1]
    names = [[p.name for p in list_checkpoints(d / "checkpoints")] for d in runs.values()]
    assert names[0] == names[1]


def test_ctrl_c_inside_a_dispatch_saves_nothing_half_done(tmp_path, monkeypatch, capsys):
    """An interrupt inside `iterations` (a torch state half way through an iteration; a JAX one donated)
    writes no checkpoint of it: the last periodic one is what a resume continues from."""
    from reppo_fast.on_torch.trainer import Trainer

    real = Trainer._iterate

    def interrupted_in_the_fourth(self, state):
        if state.iteration == 3:
            next(state.actor.parameters()).data.add_(1.0)  # half way: the networks have moved
            raise KeyboardInterrupt
        return real(self, state)

    monkeypatch.setattr(Trainer, "_iterate", interrupted_in_the_fourth)
    cfg = Config().replace(**{**TINY, "checkpoint_interval": 2}, framework="torch",
                           iterations_per_dispatch=3, run_dir=str(tmp_path / "run"))
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["ckpt_00000002.npz"]
    assert "interrupted during iteration 4; continue from the last checkpoint (ckpt_00000002.npz)" in (
        capsys.readouterr().out)
