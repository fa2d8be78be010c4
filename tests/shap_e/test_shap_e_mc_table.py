"""The derived marching-cubes table: diffusers' layout, outward winding, closed meshes."""

import numpy as np
import pytest
import torch
from diffusers.pipelines.shap_e.renderer import MeshDecoder
from shap_e_helpers import is_watertight, signed_volume

from backend.test_models.shap_e.mc_table import corner_offset, edge_id, lookup_table


def test_layout_matches_the_renderer_buffers():
    cases, masks = lookup_table()
    decoder = MeshDecoder()
    assert cases.shape == tuple(decoder.cases.shape) and cases.dtype == np.int64
    assert masks.shape == tuple(decoder.masks.shape) and masks.dtype == np.bool_
    assert not masks[0].any() and not masks[255].any()  # all outside, all inside: no surface
    assert cases.min() >= 0 and cases.max() <= 11


def test_edge_ids_follow_diffusers_convention():
    # diffusers' edge order: x edges (y, z offsets), y edges (x, z), z edges (x, y)
    assert [edge_id(a, b) for a, b in [(0, 1), (2, 3), (4, 5), (6, 7)]] == [0, 1, 2, 3]
    assert [edge_id(a, b) for a, b in [(0, 2), (1, 3), (4, 6), (5, 7)]] == [4, 5, 6, 7]
    assert [edge_id(a, b) for a, b in [(0, 4), (1, 5), (2, 6), (3, 7)]] == [8, 9, 10, 11]


def _edge_ends():
    return {edge_id(a, b): (a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1}


def test_every_triangle_faces_away_from_the_inside():
    cases, masks = lookup_table()
    ends = _edge_ends()
    for pattern in range(256):
        inside = [bool(pattern >> c & 1) for c in range(8)]
        crossed = {e for e, (a, b) in ends.items() if inside[a] != inside[b]}
        used = set(cases[pattern][masks[pattern]].ravel())
        assert used == crossed, f"pattern {pattern} must use exactly its crossed edges"
        for triangle in cases[pattern][masks[pattern]]:
            points, towards_outside = [], []
            for e in triangle:
                a, b = ends[e]
                pa, pb = np.array(corner_offset(a), float), np.array(corner_offset(b), float)
                points.append((pa + pb) / 2)
                towards_outside.append(pb - pa if inside[a] else pa - pb)
            normal = np.cross(points[1] - points[0], points[2] - points[0])
            assert np.dot(normal, np.mean(towards_outside, axis=0)) > 0, f"pattern {pattern}"


def _decode(field):
    cases, masks = lookup_table()
    decoder = MeshDecoder()
    decoder.cases.copy_(torch.from_numpy(cases))
    decoder.masks.copy_(torch.from_numpy(masks))
    padded = torch.full([n + 2 for n in field.shape], -1.0)
    padded[1:-1, 1:-1, 1:-1] = field
    out = decoder(padded, torch.tensor([-1.0] * 3), torch.tensor([2.0] * 3))
    return out.verts.numpy(), out.faces.numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_meshes_are_closed_and_outward(seed):
    n = 28
    axis = torch.linspace(-1, 1, n)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    coarse = torch.randn(1, 1, 5, 5, 5, generator=torch.Generator().manual_seed(seed))
    noise = torch.nn.functional.interpolate(coarse, size=(n, n, n), mode="trilinear")[0, 0]
    field = 0.6 - torch.sqrt(x**2 + y**2 + z**2) + 0.3 * noise  # bumpy, often several pieces
    vertices, faces = _decode(field)
    assert len(faces) > 100
    assert is_watertight(vertices, faces)
    assert signed_volume(vertices, faces) > 0  # outward winding encloses a positive volume


def test_sphere_volume():
    n = 48
    axis = torch.linspace(-1, 1, n)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    vertices, faces = _decode(0.6 - torch.sqrt(x**2 + y**2 + z**2))
    # Shap-E (and diffusers) map the padded (n + 2)-point grid onto the box, so shapes
    # come out scaled by (n - 1) / (n + 1) about the centre (1.6 % at n = 128).
    radius = 0.6 * (n - 1) / (n + 1)
    assert signed_volume(vertices, faces) == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.01)
