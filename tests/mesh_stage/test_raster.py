import torch

from backend.mesh.asset.raster import rasterize


def test_square_covers_its_texels():
    size = 64
    # two triangles covering [0.25, 0.75]^2: 32 x 32 texel centres inside
    quad = torch.tensor([[[0.25, 0.25], [0.75, 0.25], [0.75, 0.75]], [[0.25, 0.25], [0.75, 0.75], [0.25, 0.75]]])
    hits = rasterize(quad, size)
    assert len(hits) == 32 * 32
    assert len(torch.unique(hits.texel)) == len(hits)  # one face per texel
    # barycentrics give back each texel's centre
    x, y = hits.texel % size, hits.texel // size
    centre = torch.stack(((x + 0.5) / size, (y + 0.5) / size), dim=1)
    rebuilt = (quad[hits.face] * hits.bary[:, :, None]).sum(1)
    assert torch.allclose(rebuilt, centre, atol=1e-5)


def test_ring_reaches_outside_with_points_on_the_face():
    size = 64
    tri = torch.tensor([[[0.2, 0.2], [0.8, 0.2], [0.2, 0.8]]])
    inside = rasterize(tri, size)
    ring = rasterize(tri, size, ring=1.5)
    assert len(ring) > len(inside)
    assert float(ring.bary.min()) >= 0 and torch.allclose(ring.bary.sum(1), torch.ones(len(ring)))


def test_faces_without_uv_area_are_skipped():
    tri = torch.tensor([[[0.2, 0.2], [0.5, 0.5], [0.8, 0.8]]])
    assert len(rasterize(tri, 64, ring=1.5)) == 0


def test_ring_only_for_border_faces_gives_the_same_texels():
    size = 64
    quad = torch.tensor([[[0.25, 0.25], [0.75, 0.25], [0.75, 0.75]], [[0.25, 0.25], [0.75, 0.75], [0.25, 0.75]]])
    every = rasterize(quad, size, ring=1.5)
    border = rasterize(quad, size, ring=1.5, ring_faces=torch.tensor([True, True]))
    assert torch.equal(every.texel.sort().values, border.texel.sort().values)
    none = rasterize(quad, size, ring=1.5, ring_faces=torch.tensor([False, False]))
    assert len(none) == 32 * 32
