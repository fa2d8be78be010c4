#!/usr/bin/env bash
# Model server benchmark on a GPU box that has torch but not Ray: install the carried
# wheels, then run bench/serve_bench.py (docs/server.md, "Throughput").
#
#   bash bench/run_serve_gpu.sh WHEEL_DIR MODEL_DIR [serve_bench.py options]
#
# WHEEL_DIR: the server's packages for the box's Python, fetched where pip works, e.g.
#   pip download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -c requirements/lock-4.2.txt -d WHEEL_DIR 'ray[serve]==2.60.0' PyMCubes trimesh
# The ray wheel (~76 MiB) is larger than one carried folder may be: carry it split
# (split -b 60m ray-*.whl ray.whl.part-) and this script joins the parts again.
# MODEL_DIR: a TripoSR folder; without real weights make the full-size random one on the
# box: python -m backend make-test-model triposr /tmp/tripo --size official
set -euo pipefail
wheels=${1:?usage: bash bench/run_serve_gpu.sh WHEEL_DIR MODEL_DIR [options]}
model=${2:?usage: bash bench/run_serve_gpu.sh WHEEL_DIR MODEL_DIR [options]}
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$wheels"/*.whl "$work"/ 2>/dev/null || true
if ls "$wheels"/ray.whl.part-* >/dev/null 2>&1; then
    name=$(cat "$wheels"/ray.whl.name 2>/dev/null || echo ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl)
    cat "$wheels"/ray.whl.part-* > "$work/$name"
fi
python3 -m pip install -q --no-index --find-links "$work" 'ray[serve]==2.60.0' PyMCubes trimesh
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
cd "$here"
python3 bench/serve_bench.py --model "$model" --device cuda "$@"
