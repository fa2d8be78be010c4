"""Ours against One-2-3-45's own reconstruction code at every stage it recorded: cameras,
2-D features, cost volume, each sparse block, the regularised volume, SDF, gradient and
colour at query points, and the meshes (fields, vertices, faces, vertex colours).

Tolerances (the cases' READMEs): the same reference code on 1 vs 2 CPU threads differs by
about the amounts below, the batch norms over 10^4-10^6 sites amplifying rounding.
- fast (32^3): features and volumes within 1e-5 of their largest magnitude, SDF 1e-5,
  gradient 1e-5 relative, colours 2e-3, mesh vertices 1e-4 (nearest neighbour), same
  vertex and face counts, uint8 colours within 1; values sampled at projected pixels
  (colour-path features) 5e-5 relative, the ray directions 2e-3.
- official (96^3, ~100x noisier): features 5e-3, SDF 5e-4, gradient 2e-2, counts within
  0.1 %, nearest-neighbour p99 1e-4, uint8 colours within 1 for >= 98 %.
"""

import importlib

import numpy as np
import pytest
import torch
from one2345_cases import load_case, nearest, write_input_folder

reconstruction = importlib.import_module("backend.one2345.reconstruct")

TOLERANCES = {
    "fast": dict(feature_rel=1e-5, feature_abs=0.0, sdf=1e-5, gradient_rel=1e-5, gradient_abs=0.0, ray=2e-3,
                 sampled_rel=5e-5, colour=2e-3, count_share=0.0, nearest_max=1e-4, nearest_p99=1e-5,
                 uint8_within_one=1.0, vertex_colour_p99=2e-3),
    "official": dict(feature_rel=0.0, feature_abs=5e-3, sdf=5e-4, gradient_rel=0.0, gradient_abs=2e-2, ray=1e-2,
                     sampled_rel=0.0, colour=5e-3, count_share=1e-3, nearest_max=None, nearest_p99=1e-4,
                     uint8_within_one=0.98, vertex_colour_p99=1e-2),
}
CASES = ["fast", "official"]


def close(name, ours, ref, rel=0.0, abs_=0.0):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} vs {ref.shape}"
    bound = max(rel * float(np.abs(ref).max()), abs_)
    worst = float(np.abs(ours - ref).max())
    assert worst <= bound, f"{name}: max difference {worst:.3g} > {bound:.3g}"


@pytest.fixture(scope="module", params=CASES)
def run(request, tmp_path_factory):
    """Our reconstruction of a case, with what each stage produced."""
    from backend.one2345.checkpoint import load_reconstruction
    from backend.one2345.views import read_input_folder

    case = load_case(request.param)
    tolerance = TOLERANCES[case.name]
    model = load_reconstruction(case.checkpoint, "cpu", volume_size=case.volume)
    views = read_input_folder(write_input_folder(case.arrays, tmp_path_factory.mktemp(case.name)))
    record = {}
    with torch.no_grad():
        cond = reconstruction.condition(model, views, record=record)
    return case, tolerance, model, cond, record


def feature_close(run, name, ours, ref):
    _, tol, *_ = run
    close(name, ours, ref, rel=tol["feature_rel"], abs_=tol["feature_abs"])


def test_cameras(run):
    case, _, _, cond, _ = run
    z, cams = case.arrays, cond.cameras
    close("w2cs", cams.w2cs, z["sample_w2cs"], abs_=1e-6)
    close("affine_mats", cams.affine_mats, z["sample_affine_mats"], rel=1e-7)
    close("intrinsics", cams.intrinsics, z["sample_intrinsics"])
    close("query_c2w", cams.query_c2w, z["sample_query_c2w"], abs_=1e-6)
    close("scale_mat", cams.scale_mat, z["sample_scale_mat"])
    close("trans_mat", cams.trans_mat, z["sample_trans_mat"], abs_=1e-12)


def test_feature_pyramid_and_compression(run):
    z, record, cond = run[0].arrays, run[4], run[3]
    feat2, feat1, feat0 = (level[0].numpy() for level in record["pyramid"])
    feature_close(run, "feat2", feat2, z["fpn_feat2_view0"])
    if "fpn_feat1_view0" in z:
        feature_close(run, "feat1", feat1, z["fpn_feat1_view0"])
        feature_close(run, "feat0", feat0, z["fpn_feat0_view0"])
    else:
        feature_close(run, "feat1 crop", feat1[:, 48:80, 48:80], z["fpn_feat1_view0_crop"])
        feature_close(run, "feat0 crop", feat0[:, 96:160, 96:160], z["fpn_feat0_view0_crop"])
    feature_close(run, "fused mean", cond.fused.mean((0, 2, 3)), z["fused_channel_mean_allviews"])
    compressed = record["compressed"]
    feature_close(run, "compressed mean", compressed.mean((0, 2, 3)), z["compressed_channel_mean_allviews"])
    feature_close(run, "compressed view 0", compressed[0, :, 96:160, 96:160], z["compressed_view0_crop"])


def test_cost_volume_and_active_voxels(run):
    case, _, _, _, record = run
    z = case.arrays
    active = record["active"].numpy()
    allowed = 0 if case.name != "official" else 10  # voxels on a frustum's edge may flip with rounding
    assert (active != z["active_mask"].astype(bool)).sum() <= allowed
    assert (record["counts"].numpy() != z["visible_view_count"]).sum() <= allowed
    coords = z["sample_coords"]
    cost = record["cost"][0].numpy()[:, coords[:, 0], coords[:, 1], coords[:, 2]].T
    feature_close(run, "cost volume", cost, z["cost_volume"])
    assert np.all(cost[~active[coords[:, 0], coords[:, 1], coords[:, 2]]] == 0)


def test_sparse_levels_and_blocks(run):
    z, record = run[0].arrays, run[4]
    masks = record["masks"]
    for level, stride in enumerate((1, 2, 4, 8)):
        ref = z[f"level_mask_stride{stride}"].astype(bool)
        ours = masks[level].numpy()
        # the reference's array ends at its largest coordinate; ours spans the whole level
        assert np.array_equal(ours[: ref.shape[0], : ref.shape[1], : ref.shape[2]], ref), f"stride {stride} sites"
        assert ours.sum() == ref.sum(), f"stride {stride}: sites beyond the reference's"
    for block, output in record["blocks"].items():
        stride = int(z[f"sp_{block}_stride"][0])
        level = masks[{1: 0, 2: 1, 4: 2, 8: 3}[stride]]
        assert int(level.sum()) == int(z[f"sp_{block}_count"]), f"{block}: number of sites"
        sites = z[f"sp_{block}_coords"] // stride
        ours = output[0].numpy()[:, sites[:, 0], sites[:, 1], sites[:, 2]].T
        feature_close(run, block, ours, z[f"sp_{block}_feats"])


def test_regularised_volume(run):
    z, cond = run[0].arrays, run[3]
    coords = z["sample_coords"]
    volume = cond.volume[0].numpy()
    feature_close(run, "regularised features", volume[:, coords[:, 0], coords[:, 1], coords[:, 2]].T, z["reg_feats"])
    assert np.all(volume[:, ~cond.valid[0, 0].numpy().astype(bool)] == 0)


def test_sdf_at_query_points(run):
    from backend.one2345.sdf import sdf_gradient, sdf_outputs

    case, tol, model, cond, _ = run
    z = case.arrays
    points = torch.from_numpy(z["query_pts"])
    weights = model.sdf_weights()
    out = sdf_outputs(weights, cond.volume, points)
    feature_close(run, "latent", out["latent"], z["query_latent"])
    close("sdf", out["sdf"][:, None], z["query_sdf"], abs_=tol["sdf"])
    close("sdf features", out["out"][:, 1:9], z["query_sdf_features8"], abs_=10 * tol["sdf"])
    close("gradient", sdf_gradient(weights, cond.volume, points), z["query_sdf_gradient"],
          rel=tol["gradient_rel"], abs_=tol["gradient_abs"])


def test_colours_at_query_points(run):
    from backend.one2345.colours import vertex_colours, view_inputs

    case, tol, model, cond, _ = run
    z = case.arrays
    points = torch.from_numpy(z["query_pts"])
    weights = model.sdf_weights()
    args = (cond.volume, cond.valid, weights, cond.view_maps, cond.cameras.w2cs, cond.cameras.intrinsics)
    _, rgb_feat, ray_diff, mask = view_inputs(points, *args)
    assert np.array_equal(np.packbits(mask.numpy(), axis=1), z["query_view_mask"])
    close("ray_diff view 0", ray_diff[:, 0], z["query_ray_diff_view0"], abs_=tol["ray"])
    close("sampled colour and features, view 0", rgb_feat[:, 0], z["query_rgb_feats_view0"],
          rel=tol["sampled_rel"], abs_=tol["feature_abs"])
    colour = vertex_colours(model.rendering_network_lod0, points, *args)
    close("colour", colour, z["query_color"], abs_=tol["colour"])


def test_meshes(run):
    case, tol, model, cond, _ = run
    z = case.arrays
    weights = model.sdf_weights()
    from backend.one2345.sdf import sdf_grid

    for resolution in case.resolutions:
        sdf = sdf_grid(weights, cond.volume, resolution)
        field = z.get(f"u{resolution}")
        if field is not None and field.size:
            close(f"field u{resolution}", -sdf, field, abs_=tol["sdf"])
        vertices, faces = reconstruction.marching_cubes(sdf)
        ref_vertices, ref_faces = z[f"v{resolution}_norm"], z[f"f{resolution}_mc"]
        share = tol["count_share"]
        assert abs(len(vertices) - len(ref_vertices)) <= share * len(ref_vertices), f"R={resolution}: vertex count"
        assert abs(len(faces) - len(ref_faces)) <= share * len(ref_faces), f"R={resolution}: face count"
        distance, index = nearest(ref_vertices, vertices)
        if tol["nearest_max"] is not None:
            assert distance.max() <= tol["nearest_max"], f"R={resolution}: nearest-neighbour max {distance.max():.3g}"
        assert np.percentile(distance, 99) <= tol["nearest_p99"], f"R={resolution}: nearest-neighbour p99"
        colours = reconstruction.colour_vertices(model, cond, vertices)
        colour_error = np.abs(colours - z[f"vcolor{resolution}_float"][index])
        assert np.percentile(colour_error, 99) <= tol["vertex_colour_p99"], f"R={resolution}: vertex colours"
        levels = np.abs((colours * 255).astype(np.uint8).astype(int) - z[f"c{resolution}"][index, :3].astype(int))
        assert (levels.max(axis=1) <= 1).mean() >= tol["uint8_within_one"], f"R={resolution}: uint8 colours"
        if f"v{resolution}" in z:  # the mesh.ply as written: frame W
            world = cond.cameras.to_world(vertices)
            assert np.abs(world - z[f"v{resolution}"][index]).max() <= 2 * (tol["nearest_max"] or 1e-2)
