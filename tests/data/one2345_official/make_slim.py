"""Write this folder's reference.npz: a subset of ../shared/one2345/reference/official/reference.npz
(same keys and meaning, see ../shared/one2345/reference/ARRAYS.md) small enough to keep in
the repository. That case already samples its per-voxel rows (4,096) and per-block sites
(512); this keeps them all, crops the FPN maps of levels 1 (rows/columns 48..79) and 0
(96..159) of view 0 (keys ending in _crop, as tests/data/one2345_fast), keeps 2,048 of the
4,096 query points (1,024 of each kind) and the mesh at R = 64 (its field and its
arrays); the mesh at R = 128 and what no test reads are left out.

    python tests/data/one2345_official/make_slim.py ../shared/one2345/reference/official/reference.npz
"""

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LEFT_OUT = {"fpn_feat1_view0", "fpn_feat0_view0", "sample_images", "image_target", "compressed_view31_crop",
            "times_json", "torch_threads", "u128", "v128_norm", "f128_mc", "vcolor128_float", "v128", "f128", "c128"}
QUERIES = ["query_pts", "query_latent", "query_sdf", "query_sdf_features8", "query_sdf_gradient", "query_color",
           "query_view_mask", "query_ray_diff_view0", "query_rgb_feats_view0"]


def main():
    full = np.load(sys.argv[1])
    out = {k: full[k] for k in full.files if k not in LEFT_OUT and k not in QUERIES}
    out["fpn_feat1_view0_crop"] = full["fpn_feat1_view0"][:, 48:80, 48:80]
    out["fpn_feat0_view0_crop"] = full["fpn_feat0_view0"][:, 96:160, 96:160]
    points = np.r_[0:1024, 2048:3072]
    for k in QUERIES:
        out[k] = full[k][points]
    np.savez_compressed(HERE / "reference.npz", **out)
    print("wrote", HERE / "reference.npz", (HERE / "reference.npz").stat().st_size)


if __name__ == "__main__":
    main()
