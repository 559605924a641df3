#!/usr/bin/env bash
# Check and measure the GPU path in one command, within a wall-clock budget (default 8 minutes):
#   bash scripts/gpu_check.sh [--budget SECONDS] [--phases facts,tests,ops,e2e] ...   (on the GPU machine)
#   bash scripts/gpu_check.sh --dry-run                                              (any CPU: CI runs it)
# This wrapper only makes the code importable there; the check is `python -m bench.gpu_check` (its --help
# lists the options). How to send it to the lent GPU machine and read what comes back: docs/gpu_check.md.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
SITE=/tmp/reppo_fast_site

# The GPU image lacks the simulator stack: install the wheels carried in .whl/ (scripts/gpu_wheels.sh).
if ! "$PY" -c "import mujoco_playground, brax, mujoco.mjx, tyro, tensorboardX" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "mujoco_playground is missing and there is no .whl/: run scripts/gpu_wheels.sh and carry .whl"
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    .whl/*.whl || { echo "installing .whl/*.whl into $SITE failed (pip output above)"; exit 2; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
# The package runs from the tree without an install (the device gets a copy of the tree).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export GPU_CHECK_COMMAND="bash scripts/gpu_check.sh $*"
exec "$PY" -m bench.gpu_check "$@"
