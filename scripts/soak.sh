#!/usr/bin/env bash
# Fault soak (README, Faults and resuming): train ENV for STEPS env steps per seed and report, per run, the
# blown-up physics events per million env steps (train/nonfinite), the update steps skipped as non-finite
# (update/skipped_steps), and whether any logged metric or any array of the final checkpoint is non-finite.
# Usage: scripts/soak.sh [ENV] [STEPS] [SEEDS] [OUT] -- extra train flags (e.g. --framework torch)...
set -euo pipefail
ENV=${1:-HumanoidRun}; STEPS=${2:-1000000}; SEEDS=${3:-"0 1 2"}; OUT=${4:-soak}
shift $(( $# < 4 ? $# : 4 )); [ "${1:-}" = "--" ] && shift
for seed in $SEEDS; do
    python -m reppo_fast.train --env "$ENV" --preset cpu --no-progress --seed "$seed" \
        --total-steps "$STEPS" --run-dir "$OUT/$ENV-s$seed" "$@" > "$OUT-$ENV-s$seed.log" 2>&1 || true
done
python - "$OUT" <<'PY'
import json, math, sys
from pathlib import Path

import numpy as np

from reppo_fast.checkpoint import list_checkpoints, load_checkpoint

for run in sorted(Path(sys.argv[1]).iterdir()):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = rows[-1]["env_steps"] if rows else 0
    events = sum(r["train/nonfinite"] for r in rows)
    skipped = sum(r.get("update/skipped_steps", 0) for r in rows)
    bad_metrics = sorted({k for r in rows for k, v in r.items()
                          if isinstance(v, float) and not math.isfinite(v)})
    ckpts = list_checkpoints(run / "checkpoints")
    arrays = load_checkpoint(ckpts[-1])[0] if ckpts else {}
    bad_state = sorted(k for k, v in arrays.items() if v.dtype.kind == "f" and not np.all(np.isfinite(v)))
    print(f"{run.name}: {steps:,} env steps, {len(rows)} iterations; blown-up physics events {events:.0f} "
          f"({events / max(steps, 1) * 1e6:.2f} per million steps); skipped update steps {skipped:.0f}; "
          f"non-finite metrics {bad_metrics or 'none'}; non-finite state in {ckpts[-1].name if ckpts else '-'}: "
          f"{bad_state or 'none'}")
PY
