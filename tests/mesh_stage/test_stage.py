import numpy as np
import pytest
import torch
from shapes import stripes_color

from backend.bridge.errors import Cancelled
from backend.bridge.settings import GenerateSettings
from backend.mesh.asset.stage import make_asset
from backend.mesh.coordinates import blender_to_model, model_to_blender


def test_textured_result_shapes(figure):
    v, f = figure
    r = make_asset(v, f, GenerateSettings(max_faces=2000, texture_size=256), stripes_color)
    m = len(r.faces)
    assert m <= 2000 and r.vertices.shape[1] == 3 and r.vertices.dtype == np.float32 and r.faces.dtype == np.int32
    assert r.colors.shape == (len(r.vertices), 4) and r.colors.dtype == np.uint8
    assert r.corner_uvs.shape == (m, 3, 2) and r.corner_uvs.dtype == np.float32
    assert r.base_color.shape == (256, 256, 3) and r.base_color.dtype == np.uint8
    assert r.normal_map.shape == (256, 256, 3)
    assert r.stats["floater_faces_removed"] > 0
    assert set(r.timings) == {"cleanup", "decimate", "colors", "unwrap", "rasterize", "bake_color", "bake_normals"}


def test_vertex_colours_are_the_field_at_the_final_vertices(figure):
    v, f = figure
    r = make_asset(v, f, GenerateSettings(max_faces=1000), stripes_color)
    assert r.corner_uvs is None and r.base_color is None and r.normal_map is None
    expected = (stripes_color(torch.from_numpy(r.vertices)) * 255).round().numpy()
    assert np.array_equal(r.colors[:, :3], expected) and (r.colors[:, 3] == 255).all()


def test_keep_floaters_and_all_faces_keeps_the_mesh(figure):
    v, f = figure
    r = make_asset(v, f, GenerateSettings(texture_size=64, keep_floaters=True, normal_map=False), stripes_color)
    assert np.array_equal(r.vertices, v) and np.array_equal(r.faces, f)
    r = make_asset(v, f, GenerateSettings(texture_size=64, normal_map=False), stripes_color)
    assert len(r.faces) < len(f)  # the specks went


def test_progress_rises_to_one_in_every_stage(figure):
    seen = {}
    make_asset(*figure, GenerateSettings(max_faces=1000, texture_size=128), stripes_color,
               progress=lambda stage, fraction: seen.setdefault(stage, []).append(fraction))
    assert list(seen) == ["cleanup", "decimate", "colors", "unwrap", "bake"]
    for fractions in seen.values():
        assert fractions[0] == 0.0 and fractions[-1] == 1.0
        assert all(b >= a for a, b in zip(fractions, fractions[1:]))


@pytest.mark.parametrize("after", [1, 3, 6, 9])
def test_cancel_between_and_inside_steps(figure, after):
    calls = []

    def should_cancel():
        calls.append(1)
        return len(calls) > after

    with pytest.raises(Cancelled):
        make_asset(*figure, GenerateSettings(max_faces=1000, texture_size=128), stripes_color,
                   should_cancel=should_cancel)


def test_blender_to_model_inverts_model_to_blender():
    model = np.array([[0.1, 0.2, 0.3], [-0.5, 0.25, -1.0]], np.float32)
    blender = model_to_blender(model)
    assert np.array_equal(blender_to_model(blender), model)
    assert torch.equal(blender_to_model(torch.from_numpy(blender)), torch.from_numpy(model))


def test_smoothing_moves_vertices_but_keeps_the_mesh(figure):
    v, f = figure
    r = make_asset(v, f, GenerateSettings(smooth_iterations=2, keep_floaters=True), stripes_color)
    assert r.faces.shape == f.shape and r.vertices.shape == v.shape
    moved = np.linalg.norm(r.vertices - v, axis=1)
    assert 0 < moved.max() < 0.01  # terraces are a grid step (0.02 here) or less
