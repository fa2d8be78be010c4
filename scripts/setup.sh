#!/usr/bin/env bash
# From a fresh clone to a 3D object: the README's first command.
#
#   bash scripts/setup.sh
#
# 1. .venv in the repo root (Python 3.11) with the pinned packages: CPU torch, the
#    backend's packages, pytest and Blender as the bpy wheel
# 2. builds the extension zip (dist/) and installs it into that Blender
# 3. obtains a model: $IMAGE_TO_3D_MODEL, else stabilityai/TripoSR from the hub, else a
#    random smoke-test checkpoint (said loudly: its shapes are meaningless)
# 4. turns assets/example.png into demo/example.blend, demo/example.glb and
#    demo/example_preview.png
# Running it again reuses what is there. Settings (environment variables):
#   PYTHON=python3.11        interpreter for the new .venv
#   TORCH_VARIANT=cpu        cpu | cuda | default (PyPI's build; macOS) | auto
#   BLENDER_VERSION=4.2      4.2 | 4.5 | 5.0: which bpy wheel is "our Blender"
#   IMAGE_TO_3D_MODEL=DIR    a folder with TripoSR's config.yaml and model.ckpt
#   SETUP_ONLY=1             stop after step 2 (what CI needs before the tests)
#   DEMO_RESOLUTION=256      marching-cubes resolution of the demo
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"
PYTHON="${PYTHON:-python3.11}"
TORCH_VARIANT="${TORCH_VARIANT:-cpu}"
BLENDER_VERSION="${BLENDER_VERSION:-4.2}"
SETUP_ONLY="${SETUP_ONLY:-0}"
DEMO_RESOLUTION="${DEMO_RESOLUTION:-256}"
DEMO_IMAGE="assets/example.png"
DEMO_NAME="$(basename "$DEMO_IMAGE" .png)"
VENV="$REPO/.venv"
PY="$VENV/bin/python"
# "That Blender" keeps its user files (installed extensions, preferences) inside .venv,
# so set-up never touches a Blender the user already has.
export BLENDER_USER_RESOURCES="${BLENDER_USER_RESOURCES:-$VENV/blender-user}"

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\nsetup.sh: %s\n' "$*" >&2; exit 1; }

[ -f "requirements/blender-$BLENDER_VERSION.txt" ] \
    || die "BLENDER_VERSION=$BLENDER_VERSION: no requirements/blender-$BLENDER_VERSION.txt (choose 4.2, 4.5 or 5.0)"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 or set PYTHON=/path/to/python3.11"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "$PYTHON is not Python 3.11 (the bpy wheels need exactly 3.11)"

# ---------------------------------------------------------------- 1. packages
requirements=(requirements/dev.txt "requirements/blender-$BLENDER_VERSION.txt")
lock="requirements/lock-$BLENDER_VERSION.txt"
stamp="$(cat "${requirements[@]}" requirements/backend.txt requirements/server.txt "$lock" backend/setup/installer.py | sha256sum | cut -c1-16)"
stamp="$stamp $TORCH_VARIANT $BLENDER_VERSION"
if [ -x "$PY" ] && [ "$(cat "$VENV/.setup-stamp" 2>/dev/null)" = "$stamp" ]; then
    say "1/4 packages: .venv is up to date (delete .venv/.setup-stamp to reinstall)"
else
    say "1/4 packages: .venv with torch ($TORCH_VARIANT), the backend's packages, pytest, Blender $BLENDER_VERSION"
    "$PYTHON" -m backend.setup.installer "$VENV" --variant "$TORCH_VARIANT" --constraints "$lock" \
        $(printf -- '-r %s ' "${requirements[@]}")
    echo "$stamp" > "$VENV/.setup-stamp"
fi

# ---------------------------------------------------------------- 2. the extension
say "2/4 extension: build the zip with Blender's blender_ext.py and install it into .venv's Blender"
zip_path="$("$PY" tools/build_extension.py --output-dir dist | tail -n 1)"
[ -f "$zip_path" ] || die "tools/build_extension.py did not print a zip path"
"$PY" scripts/install_extension.py -- "$zip_path"

if [ "$SETUP_ONLY" = "1" ]; then
    say "set-up done (SETUP_ONLY=1). Tests: .venv/bin/python -m pytest"
    exit 0
fi

# ---------------------------------------------------------------- 3. a model
say "3/4 model"
smoke=0
if [ -n "${IMAGE_TO_3D_MODEL:-}" ]; then
    model="$IMAGE_TO_3D_MODEL"
    [ -f "$model/config.yaml" ] && [ -f "$model/model.ckpt" ] \
        || die "IMAGE_TO_3D_MODEL=$model must hold config.yaml and model.ckpt"
    echo "using IMAGE_TO_3D_MODEL=$model"
elif model="$("$PY" - <<'EOF'
import sys
from backend.bridge.errors import ModelNotFoundError
from backend.setup.hub import fetch_model
try:
    print(fetch_model("stabilityai/TripoSR"))  # ~1.7 GB the first time, progress on stderr
except ModelNotFoundError as exc:
    sys.exit(f"hub: {exc.message}")
EOF
)"; then
    echo "using the official weights from the hub: $model"
else
    smoke=1
    model="$REPO/.cache/smoke-model"
    "$PY" -m backend make-test-model triposr "$model" >/dev/null
    cat >&2 <<EOF

################################################################################
#  NO REAL MODEL: USING A RANDOM SMOKE-TEST CHECKPOINT                         #
#  The official weights could not be downloaded and IMAGE_TO_3D_MODEL is not   #
#  set. The demo runs the whole chain with seeded RANDOM weights, so the shape #
#  in demo/ is a MEANINGLESS BLOB, not a reconstruction of the image.          #
#  For real results: IMAGE_TO_3D_MODEL=/folder/with/config.yaml+model.ckpt    #
#  bash scripts/setup.sh   (files from huggingface.co/stabilityai/TripoSR)     #
################################################################################
model: $model

EOF
fi

# ---------------------------------------------------------------- 4. the demo
say "4/4 demo: $DEMO_IMAGE -> demo/$DEMO_NAME.blend, .glb, _preview.png"
demo_stamp="$(cat "$DEMO_IMAGE" "$model/config.yaml" | sha256sum | cut -c1-16) $(stat -c %s "$model/model.ckpt") $DEMO_RESOLUTION"
if [ -f "demo/$DEMO_NAME.blend" ] && [ -f "demo/$DEMO_NAME.glb" ] && [ -f "demo/${DEMO_NAME}_preview.png" ] \
    && [ "$(cat demo/.stamp 2>/dev/null)" = "$demo_stamp" ]; then
    echo "demo/ is up to date"
else
    # start clean: no stale outputs, and no .blend1 backup from saving over the old file
    rm -f demo/.stamp "demo/$DEMO_NAME.blend" "demo/$DEMO_NAME.glb" "demo/${DEMO_NAME}_preview.png"
    mkdir -p demo
    "$PY" scripts/image_to_3d.py -- --input "$DEMO_IMAGE" --model "$model" --python "$PY" --device cpu \
        --resolution "$DEMO_RESOLUTION" --save "demo/$DEMO_NAME.blend" --export demo --format glb
    [ -f "demo/$DEMO_NAME.glb" ] || die "the headless script wrote no demo/$DEMO_NAME.glb"
    "$PY" scripts/render_preview.py -- "demo/$DEMO_NAME.blend" "demo/${DEMO_NAME}_preview.png"
    echo "$demo_stamp" > demo/.stamp
fi

say "done: $(ls demo/"$DEMO_NAME".blend demo/"$DEMO_NAME".glb demo/"$DEMO_NAME"_preview.png | tr '\n' ' ')"
if [ "$smoke" = 1 ]; then
    echo "REMINDER: made with a RANDOM smoke-test checkpoint: the shape is meaningless (see above)." >&2
fi
echo "Tests: .venv/bin/python -m pytest"
