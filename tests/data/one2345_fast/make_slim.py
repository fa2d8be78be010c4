"""Write this folder's reference.npz: a subset of ../shared/one2345/reference/fast/reference.npz
(same keys and meaning, see ../shared/one2345/reference/ARRAYS.md) small enough to keep in
the repository. Rows of the per-voxel and per-site arrays are fixed random subsets (their
coordinates are stored with them), the 2-D maps of levels 0 and 1 are crops (keys ending
in _crop, rows and columns given in the README), the query arrays keep 2,048 of the 4,096
points (1,024 of each kind) and the mesh at R = 64 keeps its N-frame arrays.

    python tests/data/one2345_fast/make_slim.py ../shared/one2345/reference/fast/reference.npz
"""

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KEEP = ["pose_json", "img_ids", "images_src", "vol_dims", "voxel_size", "ckpt_file_sha256",
        "sample_w2cs", "sample_intrinsics", "sample_affine_mats", "sample_query_c2w", "sample_scale_mat",
        "sample_trans_mat", "fpn_feat2_view0", "fused_channel_mean_allviews", "compressed_channel_mean_allviews",
        "compressed_view0_crop", "active_mask", "visible_view_count", "n_active",
        "level_mask_stride1", "level_mask_stride2", "level_mask_stride4", "level_mask_stride8",
        "u32", "v32_norm", "f32_mc", "vcolor32_float", "c32", "v32", "v64_norm", "f64_mc", "vcolor64_float", "c64"]
BLOCKS = ["conv0", "conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "conv9", "conv11"]
QUERIES = ["query_pts", "query_latent", "query_sdf", "query_sdf_features8", "query_sdf_gradient", "query_color",
           "query_view_mask", "query_ray_diff_view0", "query_rgb_feats_view0"]


def main():
    full = np.load(sys.argv[1])
    out = {k: full[k] for k in KEEP}
    out["fpn_feat1_view0_crop"] = full["fpn_feat1_view0"][:, 48:80, 48:80]
    out["fpn_feat0_view0_crop"] = full["fpn_feat0_view0"][:, 96:160, 96:160]
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(full["sample_rows"]), 4096, replace=False))
    for k in ["sample_rows", "sample_coords", "cost_volume", "bp_view_mask", "reg_feats"]:
        out[k] = full[k][rows]
    for block in BLOCKS:
        count = len(full[f"sp_{block}_coords"])
        sites = np.sort(rng.choice(count, min(512, count), replace=False))
        out[f"sp_{block}_coords"] = full[f"sp_{block}_coords"][sites]
        out[f"sp_{block}_feats"] = full[f"sp_{block}_feats"][sites]
        out[f"sp_{block}_count"] = full[f"sp_{block}_count"]
        out[f"sp_{block}_stride"] = full[f"sp_{block}_stride"]
    points = np.r_[0:1024, 2048:3072]
    for k in QUERIES:
        out[k] = full[k][points]
    np.savez_compressed(HERE / "reference.npz", **out)
    print("wrote", HERE / "reference.npz", (HERE / "reference.npz").stat().st_size)


if __name__ == "__main__":
    main()
