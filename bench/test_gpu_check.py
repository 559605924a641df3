"""The GPU check's plumbing without a GPU (bench/gpu_check): time boxes, the budget, the pytest stream of a
session cut by its box, the report of a run with a cut step, the plan and the wheel check. The whole dry run
(`bash scripts/gpu_check.sh --dry-run`, about a minute) is CI's separate command."""

import json
import os
import sys
import time
import zipfile
from pathlib import Path

from bench.gpu_check import boxed, plan, report, streams
from bench.gpu_check.budget import Budget
from bench.gpu_check.stream import VARIABLE
from bench.gpu_check.wheels import missing

REPO = Path(__file__).resolve().parents[1]


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_step_ends_ok_failed_cut_or_not_run(tmp_path):
    log = tmp_path / "step.log"
    ok = boxed.run(_python("print('hello')"), 30, log)
    failed = boxed.run(_python("raise SystemExit(3)"), 30, log)
    start = time.monotonic()
    cut = boxed.run(_python("import time; print('before the cut', flush=True); time.sleep(60)"), 2, log,
                    grace=2, min_box=1)
    assert time.monotonic() - start < 10
    assert (ok.status, failed.status, failed.rc, cut.status) == ("ok", "failed", 3, "cut")
    assert "hello" in log.read_text() and "before the cut" in log.read_text()  # a cut keeps its output
    assert boxed.run(_python("print(1)"), 1, log).status == "not run"


def test_the_budget_keeps_the_later_steps_shares():
    now = [0.0]
    budget = Budget(100, clock=lambda: now[0])
    assert budget.box(kept_back=70) == 30
    now[0] = 10.0  # the first step used 10 of its 30 s: the next one gets the 20 left over
    assert budget.box(kept_back=40) == 50
    now[0] = 99.0
    assert budget.box(kept_back=40) == 0


def test_a_cut_pytest_session_keeps_what_it_finished(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import time, pytest\n"
        "def test_passes(): pass\n"
        "def test_skips(): pytest.skip('no GPU here')\n"
        "def test_fails(): assert 1 == 2\n"
        "def test_times(benchmark):\n"
        "    benchmark.extra_info['kind'] = 'e2e'\n"
        "    benchmark.pedantic(lambda: None, rounds=3)\n"
        "def test_hangs(): time.sleep(120)\n")
    stream = tmp_path / "sample.jsonl"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench.gpu_check.stream",
            str(tmp_path / "test_sample.py")]
    env = {**os.environ, VARIABLE: str(stream)}
    outcome = boxed.run(argv, 12, tmp_path / "sample.log", env=env, cwd=REPO, grace=5)
    assert outcome.status == "cut", (outcome, (tmp_path / "sample.log").read_text()[-2000:])
    events = streams.read_lines(stream)
    result = streams.tests(events)
    assert dict(result.counts) == {"passed": 2, "skipped": 1, "failed": 1}
    assert result.skips == {"Skipped: no GPU here": 1}
    assert len(result.unfinished) == 1 and result.unfinished[0].endswith("test_sample.py::test_hangs")
    bench = [e for e in events if e["event"] == "bench"]
    assert len(bench) == 1 and bench[0]["stats"]["rounds"] == 3 and bench[0]["extra_info"] == {"kind": "e2e"}


def _bench_event(median, info):
    return {"event": "bench", "test": "t", "name": "t", "group": None, "stats": {"median": median},
            "extra_info": {"device": "NVIDIA H200", "device_kind": "cuda", "versions": {},
                           "commit": "unknown", **info}}


def _write_lines(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_the_report_shows_a_cut_step_and_judges_the_targets(tmp_path):
    op = {"kind": "op", "op": "lambda_returns", "mode": "fwd", "shape": "dmc", "interpreted": False,
          "peak_bytes": None, "framework": "torch"}
    _write_lines(tmp_path / "ops.jsonl", [
        {"event": "start", "test": "ops::a"}, {"event": "report", "test": "ops::a", "when": "call",
                                               "outcome": "passed", "s": 1, "message": ""},
        _bench_event(1e-2, {**op, "variant": "torch-eager"}), _bench_event(2e-4, {**op, "variant": "triton"}),
        {"event": "start", "test": "ops::b"}])
    _write_lines(tmp_path / "tests.jsonl", [
        {"event": "report", "test": "tests::x", "when": "call", "outcome": "failed", "s": 1,
         "message": "RuntimeError: accessing tensor output of CUDAGraphs that has been overwritten"}])
    steps = [("tests", "tests", "failed", "exit status 1"), ("ops", "ops", "cut", "ran past its 100 s box"),
             ("e2e", "e2e jax-xla", "not run", "only 0 s of the budget left")]
    _write_lines(tmp_path / "steps.jsonl", [
        {"phase": phase, "name": name, "status": status, "rc": None, "seconds": 100.0, "box": 100.0,
         "note": note, "stream": f"{name.replace(' ', '_')}.jsonl", "log": "x.log"}
        for phase, name, status, note in steps])
    (tmp_path / "meta.json").write_text(json.dumps({
        "command": "bash scripts/gpu_check.sh", "dry_run": False, "budget": 480, "elapsed": 300,
        "started": "2026-01-01T00:00:00Z", "finished": True,
        "planned": [s[1] for s in steps] + ["e2e torch-eager"],
        "environment": {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}}))
    facts = {"commit": {"commit": "abc123", "source": "git"},
             "torch": {"device": "NVIDIA H200", "slug": "nvidia-h200"}}
    (tmp_path / "facts.json").write_text(json.dumps(facts))
    report.write_benchmark_json(tmp_path)
    text = report.render(tmp_path)
    assert "# reppo_fast GPU check: NVIDIA H200" in text and "`abc123` (git)" in text
    assert "| ops | **cut** | 100 | 100 | 1 passed, cut during ops::b; ran past its 100 s box |" in text
    assert "| e2e jax-xla | **not run** |" in text and "| e2e torch-eager | not reached |" in text
    assert "accessing tensor output of CUDAGraphs" in text
    assert "lambda-returns >= 100x the eager Python loop (dmc, Triton) | 50.00x | **missed**" in text
    assert "at commit `abc123`" in text  # bench/machine.py's "unknown" (no .git) replaced by the facts'
    assert "Targets: 0 of 1 measured met" in report.summary(tmp_path)


def test_the_plan_shares_the_budget_and_names_the_e2e_tests(tmp_path):
    gpu = plan.steps(plan.Options(dry_run=False, budget=480, python="python", run_dir=tmp_path))
    assert [s.name for s in gpu] == ["facts", "tests"] + [f"e2e {v}" for v in plan.E2E_VARIANTS] + ["ops"]
    assert abs(sum(s.share for s in gpu) - (480 - plan.REPORT_SECONDS)) < 1e-6
    assert "bench/test_e2e.py::test_e2e[HumanoidRun-torch-compile+graph+triton-update]" in gpu[4].argv
    assert gpu[4].slug == "e2e_torch-compile_graph_triton"
    dry = plan.steps(plan.Options(dry_run=True, budget=240, python="python", run_dir=tmp_path,
                                  phases=("ops", "e2e")))
    assert "--bench-shapes" in dry[0].argv and "small" in dry[0].argv
    assert "bench/test_e2e.py::test_e2e[ToyPointMass-jax-xla-iteration]" in dry[1].argv


def test_the_wheel_check_names_only_what_is_neither_carried_nor_on_the_image(tmp_path):
    def wheel(name, *requires):
        with zipfile.ZipFile(tmp_path / f"{name}-1.0-py3-none-any.whl", "w") as z:
            z.writestr(f"{name}-1.0.dist-info/METADATA",
                       "Name: x\n" + "".join(f"Requires-Dist: {r}\n" for r in requires))

    wheel("brax", "numpy", "flask", "dataclasses; python_version < '3.7'", "pytest; extra == 'dev'",
          "mujoco_mjx", "left_out>=1")
    wheel("mujoco_mjx", "jax")
    assert missing(tmp_path) == ["brax-1.0-py3-none-any.whl needs left_out>=1: carry it, or add it to UNUSED "
                                 "with the reason"]
