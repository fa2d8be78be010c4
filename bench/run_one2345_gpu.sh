#!/usr/bin/env bash
# One-2-3-45 benchmark (seconds per object, peak GPU memory) on a GPU box that has torch
# and transformers but not diffusers, kornia or PyMCubes.
#
#   bash bench/run_one2345_gpu.sh WHEEL_DIR [one2345_bench.py options, e.g. --repeats 5 --json out.json]
#
# WHEEL_DIR holds the carried wheels for the box's Python (the project keeps them in .whl/):
# diffusers, kornia and kornia_rs, PyMCubes, trimesh, fast_simplification. Fetch them where
# pip works:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -d WHEEL_DIR diffusers==0.42.1 kornia==0.9.0 kornia_rs==0.2.0 PyMCubes==0.1.6 trimesh==5.2.0 \
#       fast_simplification==0.2.0
# Installed with --no-deps into a folder of their own (torch is never touched). The full-size
# random models are made on the box (about 3 GB under /tmp, a minute or two); give
# --models DIR for real weights (a folder holding zero123_xl/, loftr/ and sparseneus/).
set -euo pipefail
wheels=${1:?usage: bash bench/run_one2345_gpu.sh WHEEL_DIR [options]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
site=/tmp/one2345_site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$wheels"/diffusers-*.whl "$wheels"/kornia-*.whl "$wheels"/kornia_rs-*.whl "$wheels"/PyMCubes-*.whl \
    "$wheels"/trimesh-*.whl "$wheels"/fast_simplification-*.whl
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -c "import yaml, safetensors, transformers, PIL" || { echo "missing: PyYAML, safetensors, transformers or Pillow" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
cd "$here"
python3 bench/one2345_bench.py --device cuda "$@"
