"""pytest plugin (`-p bench.gpu_check.stream`): one JSON line per event, appended to $GPU_CHECK_STREAM as it
happens, so a session cut by its time box still leaves every result it finished and names the test it was
in. Events: "start" (a test begins), "report" (an outcome: every call, and setup/teardown unless they
passed), "bench" (a pytest-benchmark result: its stats and extra_info, as --benchmark-json writes them)."""

from __future__ import annotations

import json
import os
import time

import pytest

VARIABLE = "GPU_CHECK_STREAM"


class _Stream:
    def __init__(self, path: str):
        self.path = path

    def write(self, event: dict) -> None:
        with open(self.path, "a") as f:  # one short append per line: concurrent writers never interleave
            f.write(json.dumps({"t": round(time.time(), 2), **event}, default=str) + "\n")


class _Outcomes(_Stream):
    """Registered in the controlling process only: under xdist it hears every worker's tests."""

    def pytest_runtest_logstart(self, nodeid, location):
        self.write({"event": "start", "test": nodeid})

    def pytest_runtest_logreport(self, report):
        if report.when != "call" and report.passed:
            return
        self.write({"event": "report", "test": report.nodeid, "when": report.when, "outcome": report.outcome,
                    "s": round(report.duration, 3), "message": _message(report)})


class _Benchmarks(_Stream):
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        yield
        bench = getattr(item, "funcargs", {}).get("benchmark")
        meta = getattr(bench, "stats", None)
        if meta is None:  # not a benchmark, benchmarking disabled, or it failed before timing
            return
        try:  # the plugin must never fail a test: a record it cannot make is itself recorded
            record = meta.as_dict(include_data=False)
            record["extra_info"] = dict(bench.extra_info)  # the test may have added to it after timing
            self.write({"event": "bench", "test": item.nodeid, **record})
        except Exception as err:  # noqa: BLE001
            self.write({"event": "stream-error", "test": item.nodeid,
                        "message": f"{type(err).__name__}: {err}"})


def _message(report) -> str:
    if report.passed:
        return ""
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple):
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message[:1000]
    return str(longrepr)[-1000:]


def pytest_configure(config):
    path = os.environ.get(VARIABLE)
    if not path:
        return
    if not hasattr(config, "workerinput"):  # not an xdist worker
        config.pluginmanager.register(_Outcomes(path), "gpu_check_outcomes")
    config.pluginmanager.register(_Benchmarks(path), "gpu_check_benchmarks")
