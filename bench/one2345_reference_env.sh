#!/usr/bin/env bash
# Build the CPU environment in which One-2-3-45's own reconstruction code runs, for
# bench/one2345_recon_bench.py --reference-env DIR (the same-run speed comparison).
# It follows ../shared/one2345/reference/patches.md: torch 2.13.0 (CPU), torchsparse 1.4.0
# and inplace-abn 1.1.0 compiled here, a torchvision stand-in (ToTensor, Compose), the
# reference checkout with its five CPU patches (device, device count, data loaders).
#
#   bash bench/one2345_reference_env.sh DIR SRC_ONE2345 SRC_TORCHSPARSE
#
# DIR: where the venv and the patched checkout go (e.g. /work/scratch/one2345-ref; never
# inside a git checkout). SRC_ONE2345: a git directory of One-2-3-45/One-2-3-45 (commit
# 9d5e3a0); SRC_TORCHSPARSE: one of mit-han-lab/torchsparse (tag v1.4.0).
# Needs gcc, Debian's libsparsehash-dev (installed here with apt-get when missing) and PyPI.
set -euo pipefail
DIR=$(realpath -m "$1"); ONE2345_GIT=$2; TORCHSPARSE_GIT=$3
PY=${PYTHON:-python3}
mkdir -p "$DIR"
if [ ! -f /usr/include/google/dense_hash_map ]; then
    apt-get update -q && apt-get install -y -q libsparsehash-dev
fi
[ -x "$DIR/venv/bin/python" ] || "$PY" -m venv "$DIR/venv"
VPY="$DIR/venv/bin/python"
"$VPY" -m pip install -q --upgrade pip setuptools wheel setuptools_scm
"$VPY" -m pip install -q torch==2.13.0 numpy==2.4.6 PyMCubes==0.1.6 trimesh==5.2.0 \
    opencv-python-headless==5.1.0.95 kornia==0.9.0 pyhocon==0.3.63 pillow==13.0.0 scipy==1.17.1 \
    icecream rich tqdm tensorboard

# the reference checkout at 9d5e3a0 with the CPU patches of patches.md
if [ ! -d "$DIR/src" ]; then
    mkdir -p "$DIR/src"
    git --git-dir "$ONE2345_GIT" archive 9d5e3a0 | tar -x -C "$DIR/src"
    cd "$DIR/src"
    R=reconstruction/exp_runner_generic_blender_val.py
    sed -i "s/self.device = torch.device('cuda:%d' % local_rank)/self.device = torch.device('cpu')  # CPU-PATCH/" $R
    sed -i "s/self.num_devices = torch.cuda.device_count()/self.num_devices = 1  # CPU-PATCH/" $R
    sed -i "s/num_workers=4 \* self.batch_size,/num_workers=0,  # CPU-PATCH/" $R
    sed -i "s/pin_memory=True,/pin_memory=False,  # CPU-PATCH/" $R
    sed -i "s/^    torch.cuda.set_device(args.local_rank)/    pass  # CPU-PATCH: torch.cuda.set_device(args.local_rank)/" $R
    sed -i "s/def calc_pose(phis, thetas, size, radius = 1.2, device='cuda'):/def calc_pose(phis, thetas, size, radius = 1.2, device='cpu'):  # CPU-PATCH/" utils/utils.py
    test "$(grep -c CPU-PATCH $R)" = 7 || { echo "the patches did not all apply to $R" >&2; exit 1; }
    cd - >/dev/null
fi

# torchvision stand-in: only transforms.Compose / ToTensor are used on the export path
SITE=$("$VPY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
mkdir -p "$SITE/torchvision"
cat > "$SITE/torchvision/__init__.py" <<'EOF'
"""Stand-in for torchvision (PyPI's CUDA build does not load beside the CPU torch)."""
from . import transforms, utils  # noqa: F401
EOF
echo '"""Empty: imported, never used on the export path."""' > "$SITE/torchvision/utils.py"
cat > "$SITE/torchvision/transforms.py" <<'EOF'
"""Compose and ToTensor with torchvision's semantics for PIL images."""
import numpy as np
import torch


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class ToTensor:
    def __call__(self, pic):
        a = np.array(pic, copy=True)
        if a.ndim == 2:
            a = a[:, :, None]
        t = torch.from_numpy(a.transpose(2, 0, 1).copy())
        return t.float().div(255) if t.dtype == torch.uint8 else t.float()
EOF

# compiled extensions (CPU builds: no CUDA here)
if ! "$VPY" -c "import torchsparse" 2>/dev/null; then
    rm -rf "$DIR/torchsparse"
    mkdir -p "$DIR/torchsparse"
    git --git-dir "$TORCHSPARSE_GIT" archive v1.4.0 | tar -x -C "$DIR/torchsparse"
    (cd "$DIR/torchsparse" && MAX_JOBS=2 "$VPY" -m pip install -q --no-build-isolation .)
fi
if ! "$VPY" -c "import inplace_abn" 2>/dev/null; then
    "$VPY" -m pip install -q --no-build-isolation inplace-abn==1.1.0
fi
"$VPY" -c "import torchsparse, inplace_abn, torch; print('reference environment ready:', torch.__version__)"
