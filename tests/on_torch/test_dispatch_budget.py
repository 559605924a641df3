"""The CPU proxy of launch overhead (bench/dispatch.py): ops dispatched per rollout step and per update step
within their budgets, the same ops at every call of a phase, and no host sync anywhere in an iteration.

Counts, not timings: the same on every machine. A phase that made a different sequence of ops from call to
call, or read a device value on the host, could not be captured as a CUDA graph."""

import pytest

from bench.dispatch import BUDGETS, build, count_iteration, warm_state

PHASES = ("rollout step", "update step", "update phase")


@pytest.fixture(scope="module", params=["reppo", "ppo"])
def counted(request):
    trainer = build(request.param)
    return request.param, count_iteration(trainer, warm_state(trainer), iterations=2)


def test_every_phase_dispatches_the_same_ops_at_every_call(counted):
    _, counter = counted
    for phase in PHASES:
        calls = counter.calls[phase]
        assert len(calls) >= 2, (phase, len(calls))
        assert all(ops == calls[0] for ops in calls), phase


def test_an_iteration_has_no_host_sync(counted):
    _, counter = counted
    assert counter.syncs == []


def test_dispatches_per_step_are_within_budget(counted):
    algo, counter = counted
    for phase in ("rollout step", "update step"):
        ops = len(counter.calls[phase][0])
        assert ops <= BUDGETS[(algo, phase)], f"{algo} {phase}: {ops} ops, budget {BUDGETS[(algo, phase)]}"


def test_the_counter_catches_a_host_sync_and_a_changing_phase():
    """The oracle for the two checks above: an update step that reads its loss on the host, and one that
    branches on it, are caught."""
    trainer = build("ppo")
    state = warm_state(trainer)
    step = trainer.update_step
    calls = []

    def reads_the_host(*args):
        metrics = step(*args)
        calls.append(None)
        float(metrics["loss"])  # a host read
        if len(calls) % 2:  # a Python branch: every other call dispatches one more op
            metrics["loss"] = metrics["loss"] * 1.0
        return metrics

    trainer.update_step = reads_the_host
    counter = count_iteration(trainer, state)
    assert [where for where, _ in counter.syncs] == ["update step"] * len(counter.calls["update step"])
    calls = counter.calls["update step"]
    assert any(ops != calls[0] for ops in calls)
