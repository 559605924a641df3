#!/usr/bin/env bash
# Fetch, on a machine with internet access, the wheels the GPU machine lacks, into .whl/ (ignored by git; the
# device tool's `run` takes it along only when `carry` names it), and record the commit they travel with.
# scripts/gpu_check.sh installs them there. See docs/gpu_check.md.
#
# The GPU image (Python 3.12, torch 2.11, triton 3.6, jax 0.11.2 with CUDA, flax, optax, pytest,
# pytest-benchmark, ...) has no mujoco, mujoco-mjx, playground, brax, tyro or tensorboardX and cannot
# download. Versions: playground as pyproject.toml pins it, the rest as pip resolved them for this project's
# .venv. Not carried, never imported on our paths (bench/gpu_check/wheels.py lists why): warp-lang (149 MB,
# impl="warp" only), mujoco-studio, glfw, pyopengl, mediapy, flask; mani_skill and sapien are too large.
#
# Usage: bash scripts/gpu_wheels.sh     (about 26 MB; run it again before each device call: it only
#                                        refreshes .whl/commit.txt when the wheels are there)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DEST=.whl
WHEELS=(playground==0.2.0 mujoco==4.0.0 mujoco-core==4.0.0 mujoco-mjx==3.17.0 brax==0.14.2 jaxopt==0.8.5
        trimesh==5.2.0 ml-collections==1.1.0 tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.6.1
        tensorboardX==2.6.5)
mkdir -p "$DEST"
for spec in "${WHEELS[@]}"; do
  # pip's wheel names use underscores and may differ in case: compare normalised names.
  stem=$(echo "${spec%%==*}-${spec##*==}" | tr 'A-Z-' 'a-z_')
  if ls "$DEST" | tr 'A-Z-' 'a-z_' | grep -q "^${stem}_"; then continue; fi
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "$spec" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
done
# The device gets a copy of the tree without .git: the check reads the commit from here (facts.py).
head=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && head="$head+dirty"
echo "$head" > "$DEST/commit.txt"
ls -1 "$DEST"
echo "$(ls "$DEST"/*.whl | wc -l) wheels, $(du -ch "$DEST"/*.whl | tail -1 | cut -f1) in $DEST; commit $head"
"$PY" -m bench.gpu_check.wheels "$DEST"
