#!/usr/bin/env bash
# Shap-E benchmark on a GPU box that has torch and transformers but no diffusers.
#
#   bash bench/run_gpu.sh WHEEL_DIR [bench_shap_e.py options, e.g. --repeats 5 --json out.jsonl]
#
# WHEEL_DIR holds the carried diffusers wheel (diffusers-0.42.1-py3-none-any.whl: pure
# Python; its other needs - huggingface_hub >= 1.32, safetensors >= 0.8, numpy, regex,
# requests, Pillow, filelock - are on such a box already; on Python >= 3.8 it uses the
# standard library's importlib.metadata). Fetch it where pip works:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d WHEEL_DIR diffusers==0.42.1
# The full-size random folders are made on the box (about 6 GB under /tmp, a minute each).
set -euo pipefail
wheels=${1:?usage: bash bench/run_gpu.sh WHEEL_DIR [options]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/shap_e_site "$wheels"/diffusers-*.whl
export PYTHONPATH=/tmp/shap_e_site${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 "$here/bench/bench_shap_e.py" --device cuda --models /tmp/shap_e_models --repeats 3 "$@"
