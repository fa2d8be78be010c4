import numpy as np
import torch
import torch.nn.functional as F
from asset_quality import color_errors, shading_errors
from shapes import bumpy_sphere_sdf, marching_cubes_mesh, stripes_color

from backend.bridge.settings import GenerateSettings
from backend.mesh.asset.padding import fill_empty
from backend.mesh.asset.stage import make_asset


def asset(v, f, color_at=stripes_color, **options):
    result = make_asset(v, f, GenerateSettings(**options), color_at)
    result.uvs = result.corner_uvs  # the name the quality measures read (MeshResult's)
    return result


def test_texture_matches_the_colour_field(figure):
    result = asset(*figure, max_faces=3000, texture_size=512, normal_map=False)
    errors = color_errors(result, stripes_color, count=20000)
    # targets for the model: 4/255 median, 12/255 p95 (measured here: well under 1)
    assert errors["texture_median"] <= 4 and errors["texture_p95"] <= 12, errors


def test_constant_colour_fills_every_texel_and_mip_level(figure):
    grey = lambda p: torch.full((p.shape[0], 3), 0.8)  # noqa: E731
    result = asset(*figure, grey, max_faces=2000, texture_size=256, normal_map=False)
    image = torch.from_numpy(result.base_color).float()
    assert float((image - 204).abs().max()) == 0  # padding leaves no background anywhere
    level = image.permute(2, 0, 1)[None]
    while level.shape[-1] > 1:  # mip-maps: 2x2 box filter, as GPUs build them
        level = F.avg_pool2d(level, 2)
        assert float((level - 204).abs().max()) < 1e-3


def test_padding_copies_the_nearest_chart():
    image = torch.zeros((16, 16, 3))
    filled = torch.zeros((16, 16), dtype=torch.bool)
    image[2:5, 2:5] = torch.tensor([1.0, 0.0, 0.0])
    image[10:14, 10:14] = torch.tensor([0.0, 0.0, 1.0])
    filled[2:5, 2:5] = filled[10:14, 10:14] = True
    out = fill_empty(image, filled)
    assert torch.equal(out[filled], image[filled])
    assert torch.allclose(out[5, 3], torch.tensor([1.0, 0.0, 0.0]))  # next to red: red
    assert torch.allclose(out[14, 12], torch.tensor([0.0, 0.0, 1.0]))  # next to blue: blue


def test_normal_map_brings_back_the_dense_shading():
    v, f = marching_cubes_mesh(bumpy_sphere_sdf, 96)
    errors = shading_errors(asset(v, f, max_faces=400, texture_size=512), v, f, count=20000)
    with_map, without = errors["normal_map"], errors["no_map"]
    # the bumps tilt the normal by up to ~15 degrees; 400 faces cannot follow them
    assert without["angle_median"] > 4, errors
    assert with_map["angle_median"] < 0.3 * without["angle_median"], errors
    assert with_map["angle_p95"] < 0.3 * without["angle_p95"], errors


def test_flat_normal_map_on_a_flat_surface():
    # a square sheet, finely triangulated: its normal map is (0, 0, 1) everywhere
    n = 20
    x, y = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="ij")
    v = np.stack((x.ravel(), y.ravel(), np.zeros(n * n)), 1).astype(np.float32)
    i = np.arange(n * n).reshape(n, n)
    quads = np.stack((i[:-1, :-1], i[1:, :-1], i[1:, 1:], i[:-1, 1:]), -1).reshape(-1, 4)
    f = np.concatenate((quads[:, [0, 1, 2]], quads[:, [0, 2, 3]])).astype(np.int32)
    result = asset(v, f, texture_size=64)
    assert np.abs(result.normal_map.astype(int) - [128, 128, 255]).max() <= 1


def test_surface_distance_measure_finds_a_known_offset(sphere):
    from asset_quality import surface_distances

    v, f = sphere
    same = surface_distances(v, f, v, f, samples=5000, cloud=50_000)
    assert same["max_pct"] < 1e-5
    grown = surface_distances(v * 1.02, f, v, f, samples=5000, cloud=50_000)
    expected = 0.02 * 0.4 / np.linalg.norm(np.ptp(v, axis=0)) * 100  # 2 % of the radius, in % of the diagonal
    assert abs(grown["median_pct"] - expected) < 0.1 * expected and grown["max_pct"] < 1.3 * expected, (grown, expected)
