#!/usr/bin/env bash
# Start-up time (README, Start-up time): seconds from launching a `--preset cpu` run to its first finished
# iteration (the first line of metrics.jsonl), for a first run with an empty compile cache and a second run
# of the same setting that finds it, per env and framework. Each run trains one iteration, then evaluates
# once (after the measured point) and exits, so the next one starts from a cache the first finished writing.
# Usage: scripts/startup_time.sh [ENV ...]   (default: CartpoleBalance HumanoidRun); PYTHON=... to choose
# the interpreter. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
[ $# -gt 0 ] && ENVS=("$@") || ENVS=(CartpoleBalance HumanoidRun)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

seconds_to_first_iteration() {  # NAME ARGS...: launch a run, report when its first iteration is logged
    local dir="$WORK/$1"; shift
    local t0 t1 pid
    t0=$(date +%s.%N)
    "$PY" -m reppo_fast.train "$@" --run-dir "$dir" --no-progress > "$dir.log" 2>&1 &
    pid=$!
    until [ -s "$dir/metrics.jsonl" ]; do
        if ! kill -0 "$pid" 2> /dev/null; then
            echo "run $dir failed:" >&2; tail -20 "$dir.log" >&2; return 1
        fi
        sleep 0.2
    done
    t1=$(date +%s.%N)
    wait "$pid"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }'
}

echo "| env | framework | first run (empty cache) | second run (cache) |"
echo "| --- | --- | --- | --- |"
for env in "${ENVS[@]}"; do
    for framework in jax torch; do
        cache="$WORK/cache-$env-$framework"  # empty: the first run fills it
        args=(--env "$env" --preset cpu --framework "$framework" --total-steps 1 --compile-cache-dir "$cache")
        first=$(seconds_to_first_iteration "$env-$framework-1" "${args[@]}")
        second=$(seconds_to_first_iteration "$env-$framework-2" "${args[@]}")
        echo "| $env | $framework | $first s | $second s |"
    done
done
