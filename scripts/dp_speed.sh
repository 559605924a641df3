#!/usr/bin/env bash
# Env steps/s of 1 vs W data-parallel ranks on both paths, side by side in one run (README, Many GPUs).
# On a CPU the JAX ranks are host devices forced by XLA_FLAGS and the torch ranks gloo processes; on GPUs
# they are GPUs. Usage: scripts/dp_speed.sh [W] [ENV] [ITERATIONS] -- extra train flags...
# Prints, per path and rank count, the median of time/env_steps_per_s over the iterations after the first
# two (compilation).
set -euo pipefail
W=${1:-2}; ENV=${2:-CartpoleBalance}; ITERS=${3:-12}
shift $(( $# < 3 ? $# : 3 )); [ "${1:-}" = "--" ] && shift
OUT=$(mktemp -d)
common=(--env "$ENV" --preset cpu --no-progress --eval-interval 100000 "$@")
steps() {  # total steps for ITERS iterations of the config
    python - "$@" <<'PY'
import sys
from reppo_fast.train import parse_args
cfg, _ = parse_args(sys.argv[1:])
print(cfg.steps_per_iteration * int(__import__("os").environ["ITERS"]))
PY
}
export ITERS
TOTAL=$(steps "${common[@]}")
for w in 1 "$W"; do
    XLA_FLAGS="--xla_force_host_platform_device_count=$W" python -m reppo_fast.train "${common[@]}" \
        --devices "$w" --total-steps "$TOTAL" --run-dir "$OUT/jax$w" > /dev/null
    torchrun --standalone --nproc_per_node "$w" -m reppo_fast.train "${common[@]}" --framework torch \
        --total-steps "$TOTAL" --run-dir "$OUT/torch$w" > /dev/null 2>&1
done
python - "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path
for run in sorted(Path(sys.argv[1]).iterdir()):
    rates = [json.loads(l)["time/env_steps_per_s"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    print(f"{run.name:8s} ranks={json.loads((run / 'meta.json').read_text())['world_size']}  "
          f"median env steps/s={statistics.median(rates[2:]):,.0f}  iterations={len(rates)}")
PY
