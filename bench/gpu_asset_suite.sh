#!/usr/bin/env bash
# Issue 23's GPU run (bench/gpu_asset_suite.py) on a fresh GPU box that has torch with
# CUDA, numpy, scipy, Pillow and PyYAML but not the mesh packages; a few minutes on an H200.
#
#   bash bench/gpu_asset_suite.sh [gpu_asset_suite.py options, e.g. --repeats 7]
#
# Run in the repository root. It reads, when present (carry them; both git-ignored):
#   .whl/      the cp312 manylinux x86-64 wheels of fast-simplification==0.2.0 and
#              PyMCubes==0.1.6, fetched where pip works:
#                pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#                    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#                    fast-simplification==0.2.0 PyMCubes==0.1.6
#   .gpu/triposr/  make_test_checkpoint.py, checkpoint_keys.json, config.yaml, reference.npz
#              (../shared/triposr/reference/fullsize/) and robot.png (../shared/examples/):
#              the checkpoint of bench/RESULTS.md (seed 2, density bias 17.7) and its
#              reference numbers, so the verdict is test_fullsize.py's. Without them the
#              project's own full-size random checkpoint and example image are used and
#              the verdict is against float64.
# Writes suite.md, suite.json and suite.log to $OUT (else /tmp/gpu_asset_suite).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=${OUT:-/tmp/gpu_asset_suite}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -c "import mcubes, fast_simplification" || { echo "PyMCubes or fast-simplification missing: carry .whl (see the top of this script)" >&2; exit 2; }
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader || true
model=/tmp/triposr-fullsize
tools=.gpu/triposr
options=()
if [ -f "$tools/make_test_checkpoint.py" ]; then
    python3 "$tools/make_test_checkpoint.py" --keys "$tools/checkpoint_keys.json" --config "$tools/config.yaml" \
        --out "$model" --seed 2 --density-bias 17.7
    [ -f "$tools/reference.npz" ] && options+=(--reference "$tools/reference.npz")
else
    python3 -m backend make-test-model triposr "$model" --size official
fi
image=assets/example.png
[ -f "$tools/robot.png" ] && image=$tools/robot.png
python3 bench/gpu_asset_suite.py --model "$model" --image "$image" --out "$out" "${options[@]}" "$@" 2>&1 | tee "$out/suite.log"
