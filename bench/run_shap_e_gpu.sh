#!/usr/bin/env bash
# Shap-E benchmark on a GPU box that has torch and transformers but not diffusers.
#
#   bash bench/run_shap_e_gpu.sh WHEEL_DIR [shap_e_bench.py options, e.g. --repeats 5 --json out.jsonl]
#
# WHEEL_DIR holds the carried wheels for the box's Python: diffusers (pure Python; its
# other needs - huggingface_hub, safetensors, numpy, regex, requests, Pillow, filelock -
# come with transformers) and, where the box lacks them, PyMCubes and scipy (the project's
# TripoSR surface, imported by the job function's module). Fetch them where pip works:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -d WHEEL_DIR diffusers==0.42.1 PyMCubes==0.1.6 scipy==1.17.1
# The full-size random folders are made on the box (about 6 GB under /tmp, a minute each);
# give --text-model/--image-model for real weights. Prints JSON lines, then the table row
# for bench/RESULTS.md.
set -euo pipefail
wheels=${1:?usage: bash bench/run_shap_e_gpu.sh WHEEL_DIR [options]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
site=/tmp/shap_e_site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/diffusers-*.whl
python3 -c "import mcubes" 2>/dev/null || python3 -m pip install -q --no-index --find-links "$wheels" PyMCubes scipy
python3 -c "import yaml, trimesh" 2>/dev/null || echo "warning: PyYAML or trimesh missing: carry them too" >&2
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
cd "$here"
python3 bench/shap_e_bench.py --device cuda --models /tmp/shap_e_models --repeats 3 "$@"
