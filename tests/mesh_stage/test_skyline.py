"""The packer's skyline (backend/mesh/asset/skyline.py): profiles, outlines, and rows alone."""

import numpy as np
import pytest
import torch
from shapes import bumpy_sphere_sdf, marching_cubes_mesh

from backend.mesh.asset import skyline
from backend.mesh.asset.charts import box_charts, face_adjacency, project_charts
from backend.mesh.asset.decimate import decimate
from backend.mesh.asset.packing import chart_outline, orient_charts
from backend.mesh.asset.raster import overlap_fraction, rasterize
from backend.mesh.asset.unwrap import unwrap

SIZE = 512


@pytest.fixture(scope="module")
def busy():
    """Hundreds of small, oddly shaped charts: what the rows are for."""
    v, f = marching_cubes_mesh(lambda p: bumpy_sphere_sdf(p, bump=0.05, frequency=30.0), 64)
    return decimate(torch.from_numpy(v), torch.from_numpy(f).long(), 4000)


@pytest.fixture(scope="module")
def charts(busy):
    v, f = busy
    adjacency = face_adjacency(f)
    chart, direction = box_charts(v, f, adjacency)
    n = int(chart.max()) + 1
    coords = orient_charts(project_charts(v, f, direction), chart, n)
    low = torch.full((n, 2), float("inf")).scatter_reduce(
        0, chart.repeat_interleave(3)[:, None].expand(-1, 2), coords.reshape(-1, 2), reduce="amin")
    local = coords.reshape(-1, 2) - low[chart.repeat_interleave(3)]
    return local, chart, n, chart_outline(chart, adjacency)


def test_the_outline_faces_footprint_covers_every_cell_the_chart_touches(charts):
    # only faces on a chart's border are rasterised for the footprint: the cells any
    # point of the chart falls in must still lie within its profiles
    local, chart, n, outline = charts
    assert 0 < float(outline.float().mean()) < 1
    g = torch.Generator().manual_seed(0)
    corners = local.view(-1, 3, 2)
    for scale in (3.0, 7.5):
        w, h, col0, row0, (col_lo, col_hi, row_lo, row_hi) = skyline.footprints(
            local.view(-1, 3, 2)[outline].reshape(-1, 2), chart[outline], n, scale)
        assert np.array_equal((w, h), skyline.footprints(local, chart, n, scale)[:2])  # the same frames
        bary = torch.rand(corners.shape[0], 64, 3, generator=g)
        bary = torch.cat((bary / bary.sum(-1, keepdim=True), torch.eye(3).expand(corners.shape[0], 3, 3)), dim=1)
        points = torch.einsum("msk,mkd->msd", bary, corners) * scale + 1.0  # footprint units, as footprints()
        cells = points.floor().long().reshape(-1, 2).numpy()
        c = chart.repeat_interleave(bary.shape[1]).numpy()
        x, y = cells[:, 0], cells[:, 1]
        assert ((col_lo[col0[c] + x] <= y) & (y <= col_hi[col0[c] + x])).all()
        assert ((row_lo[row0[c] + y] <= x) & (x <= row_hi[row0[c] + y])).all()


def test_lying_profiles_are_the_quarter_turns_of_the_one_by_one_packer(charts):
    local, chart, n, _ = charts
    w, h, col0, row0, prof = skyline.footprints(local, chart, n, 5.0)
    turn, width, first, _, bottoms, tops = skyline._lying_profiles(w, h, col0, row0, prof)
    for i in range(n):
        quarter = skyline._turned_profiles(i, w, h, col0, row0, prof)
        columns = slice(first[i], first[i] + width[i])
        for which, t in ((0, turn[i]), (1, turn[i] + 2)):
            bottom, top = quarter[t]
            touched = tops[which, columns] >= 0
            assert np.array_equal(bottoms[which, columns][touched], bottom[touched])
            assert np.array_equal(tops[which, columns][touched], top[touched])
            assert (bottom[~touched] > width[i] + max(w[i], h[i])).all() or (top[~touched] < 0).all()


@pytest.mark.parametrize("exact", [0, skyline.EXACT_CHARTS])
def test_rows_keep_charts_apart(busy, monkeypatch, exact):
    monkeypatch.setattr(skyline, "EXACT_CHARTS", exact)  # 0: every chart by rows
    layout = unwrap(*busy, SIZE)
    assert layout.chart_count > 50
    uv = layout.corner_uvs
    assert float(uv.min()) >= 0 and float(uv.max()) <= 1
    assert overlap_fraction(uv, SIZE) < 0.01  # centres on shared edges count, as in test_unwrap
    hits = rasterize(uv, SIZE, ring=1.0)
    owner = torch.full((SIZE * SIZE,), -1)
    owner[hits.texel] = layout.chart[hits.face]
    owner = owner.view(SIZE, SIZE)
    right = (owner[:, 1:] >= 0) & (owner[:, :-1] >= 0) & (owner[:, 1:] != owner[:, :-1])
    up = (owner[1:] >= 0) & (owner[:-1] >= 0) & (owner[1:] != owner[:-1])
    assert int(right.sum()) == 0 and int(up.sum()) == 0  # even the rings of two charts never touch
    e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    assert float((e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).abs().sum() / 2) > 0.3  # the atlas is used
