"""Write tests/data/one2345_<case>/reference.npz: a subset of one of
../shared/one2345/reference/<case>/reference.npz (same keys and meaning, see
../shared/one2345/reference/ARRAYS.md) small enough to keep in the repository. Both cases:
the FPN maps of view 0 at levels 1 and 0 cropped (rows/columns 48..79 and 96..159, keys
ending in _crop), 2,048 of the 4,096 query points (1,024 of each kind).
- fast: fixed random subsets of the per-voxel rows (4,096) and of each sparse block's
  sites (512), their coordinates stored with them; the meshes at R = 32 (all arrays) and
  R = 64 (N-frame arrays).
- official: its rows and sites are already such subsets and are kept; the R = 64 field
  and mesh are kept, the R = 128 mesh and what no test reads are left out.

    python tests/data/one2345_slim.py fast ../shared/one2345/reference/fast/reference.npz
    python tests/data/one2345_slim.py official ../shared/one2345/reference/official/reference.npz
"""

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
QUERIES = ["query_pts", "query_latent", "query_sdf", "query_sdf_features8", "query_sdf_gradient", "query_color",
           "query_view_mask", "query_ray_diff_view0", "query_rgb_feats_view0"]
FAST_KEEP = ["pose_json", "img_ids", "images_src", "vol_dims", "voxel_size", "ckpt_file_sha256",
             "sample_w2cs", "sample_intrinsics", "sample_affine_mats", "sample_query_c2w", "sample_scale_mat",
             "sample_trans_mat", "fpn_feat2_view0", "fused_channel_mean_allviews",
             "compressed_channel_mean_allviews", "compressed_view0_crop", "active_mask", "visible_view_count",
             "n_active", "level_mask_stride1", "level_mask_stride2", "level_mask_stride4", "level_mask_stride8",
             "u32", "v32_norm", "f32_mc", "vcolor32_float", "c32", "v32", "v64_norm", "f64_mc", "vcolor64_float", "c64"]
FAST_BLOCKS = ["conv0", "conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "conv9", "conv11"]
OFFICIAL_LEFT_OUT = {"fpn_feat1_view0", "fpn_feat0_view0", "sample_images", "image_target", "compressed_view31_crop",
                     "times_json", "torch_threads", "u128", "v128_norm", "f128_mc", "vcolor128_float", "v128", "f128",
                     "c128", *QUERIES}


def fast_part(full) -> dict:
    out = {k: full[k] for k in FAST_KEEP}
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(full["sample_rows"]), 4096, replace=False))
    for k in ["sample_rows", "sample_coords", "cost_volume", "bp_view_mask", "reg_feats"]:
        out[k] = full[k][rows]
    for block in FAST_BLOCKS:
        count = len(full[f"sp_{block}_coords"])
        sites = np.sort(rng.choice(count, min(512, count), replace=False))
        out[f"sp_{block}_coords"] = full[f"sp_{block}_coords"][sites]
        out[f"sp_{block}_feats"] = full[f"sp_{block}_feats"][sites]
        out[f"sp_{block}_count"] = full[f"sp_{block}_count"]
        out[f"sp_{block}_stride"] = full[f"sp_{block}_stride"]
    return out


def official_part(full) -> dict:
    return {k: full[k] for k in full.files if k not in OFFICIAL_LEFT_OUT}


def main():
    case, source = sys.argv[1], sys.argv[2]
    full = np.load(source)
    out = {"fast": fast_part, "official": official_part}[case](full)
    out["fpn_feat1_view0_crop"] = full["fpn_feat1_view0"][:, 48:80, 48:80]
    out["fpn_feat0_view0_crop"] = full["fpn_feat0_view0"][:, 96:160, 96:160]
    points = np.r_[0:1024, 2048:3072]
    for k in QUERIES:
        out[k] = full[k][points]
    target = HERE / f"one2345_{case}" / "reference.npz"
    np.savez_compressed(target, **out)
    print("wrote", target, target.stat().st_size)


if __name__ == "__main__":
    main()
