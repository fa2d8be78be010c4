"""Quadric vertex clustering (backend/mesh/asset/clustering.py), the decimation's first cut."""

import numpy as np
import torch
from asset_quality import surface_distances
from shapes import figure_sdf, marching_cubes_mesh

from backend.mesh.asset import decimate as decimation
from backend.mesh.asset.clustering import cluster_vertices


def box_sdf(p, half=np.array([0.3, 0.2, 0.25], np.float32)):
    q = np.abs(p) - half
    return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)


def test_quadric_placement_keeps_a_box_sharp_where_the_mean_rounds_it():
    v, f = (torch.from_numpy(a) for a in marching_cubes_mesh(box_sdf, 48))
    f = f.long()
    edge = decimation.median_edge(v, f)
    off = {}
    for quadric in (False, True):
        cv, cf = cluster_vertices(v, f, 3 * edge, quadric=quadric)
        assert cf.shape[0] < f.shape[0] / 5 and int(cf.max()) == cv.shape[0] - 1
        off[quadric] = float(np.abs(box_sdf(cv.numpy())).max()) / edge
    assert off[False] > 0.5  # the mean of a corner's cell sits inside the corner
    assert off[True] < 0.3 and off[True] < off[False] / 3


def test_a_flat_cell_lands_on_its_plane_at_the_mean():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(400, 2, generator=g)
    v = torch.cat((xy, torch.full((400, 1), 0.25)), dim=1)
    f = torch.randint(0, 400, (900, 3), generator=g)
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    cv, _ = cluster_vertices(v, f, 0.2)
    assert torch.allclose(cv[:, 2], torch.full_like(cv[:, 2], 0.25), atol=1e-6)
    plain, _ = cluster_vertices(v, f, 0.2, quadric=False)
    assert torch.allclose(cv, plain, atol=1e-5)  # nothing to pull it off the mean


def test_clustering_first_is_as_accurate_as_the_collapse_alone():
    # a 7x reduction: the quadric clustering takes the surface to ~2x the target first
    v, f = marching_cubes_mesh(figure_sdf, 128)
    dense_v, dense_f = torch.from_numpy(v), torch.from_numpy(f).long()
    target = len(f) // 7
    assert (len(f) / (decimation.CLUSTER_TO * target)) ** 0.5 >= decimation.MIN_CELL_EDGES
    low_v, low_f = decimation.decimate(dense_v, dense_f, target)
    alone_v, alone_f = decimation.quadric_decimate(v, f, target)
    assert len(low_f) <= target
    ours = surface_distances(low_v.numpy(), low_f.numpy(), v, f, samples=20_000, cloud=200_000)
    alone = surface_distances(alone_v, alone_f, v, f, samples=20_000, cloud=200_000)
    assert ours["p99_pct"] < 0.5 and ours["p99_pct"] < 1.5 * alone["p99_pct"], (ours, alone)
