"""`--benchmark-json` output, indexed the way the report and the targets read it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    median: float  # seconds per call
    info: dict  # the benchmark's extra_info

    @property
    def gbps(self) -> float | None:
        return self.info.get("gbps")

    @property
    def copy_fraction(self) -> float | None:
        return self.info.get("copy_fraction")

    @property
    def peak(self) -> int | None:
        return self.info.get("peak_bytes")


@dataclass
class Results:
    ops: dict  # (op, mode, shape, variant) -> Result
    e2e: dict  # (env, variant, measure) -> Result
    meta: dict  # device, device_kind, versions, commit, copy bandwidth, datetime, load averages

    @property
    def on_gpu(self) -> bool:
        return self.meta.get("device_kind") == "cuda"

    def op(self, op, mode, shape, *variants) -> Result | None:
        """The fastest of `variants` that was measured (None if none was)."""
        found = [r for v in variants if (r := self.ops.get((op, mode, shape, v))) is not None]
        return min(found, key=lambda r: r.median, default=None)


def load(*paths: str | Path) -> Results:
    """Results of one or more files (a suite split into several runs on one machine); a later file's
    result for the same case replaces an earlier one's."""
    ops, e2e, dates, benches = {}, {}, [], []
    for path in paths:
        data = json.loads(Path(path).read_text())
        dates.append(data.get("datetime") or "")
        benches += [b for b in data.get("benchmarks", [])
                    if b.get("stats") and "kind" in b.get("extra_info", {})]
    infos = [b["extra_info"] for b in benches]
    for bench, info in zip(benches, infos):
        result = Result(bench["stats"]["median"], info)
        if info["kind"] == "op":
            ops[(info["op"], info["mode"], info["shape"], info["variant"])] = result
        else:
            e2e[(info["env"], info["variant"], info["measure"])] = result
    devices = sorted({i["device"] for i in infos})
    if len(devices) > 1:
        raise ValueError(f"results from different devices {devices}: report them separately")

    def first(key):
        return next((i[key] for i in infos if i.get(key) is not None), None)

    meta = {key: first(key) for key in ("device", "device_kind", "versions", "copy_gbps", "copy_method")}
    meta["commit"] = ", ".join(sorted({i["commit"] for i in infos}))
    meta["datetime"] = ", ".join(d for d in dates if d)
    meta["load_avg"] = max((i["load_avg"] for i in infos if i.get("load_avg") is not None), default=None)
    return Results(ops, e2e, meta)
