"""Our backend against the numbers the reference implementation computed (../shared)."""

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from backend.bridge.settings import GenerateSettings
from backend.mesh.coordinates import model_to_blender
from backend.pipeline import generate_mesh, load_model
from backend.prepare.framing import prepare_image

# SPEC tolerances: 1e-4 for codes and field values; meshes 1 % vertex count,
# 1e-3 distance between vertex sets, 2/255 colour.
FIELD_TOL = 1e-4
VERTEX_TOL = 1e-3
COLOR_TOL = 2


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    return np.load(tiny_model_dir / "reference.npz")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir, "cpu")


def test_prepared_image_equals_reference(reference, flamingo_path):
    prepared = prepare_image(flamingo_path, 0.85, remove_background=True)
    np.testing.assert_array_equal(prepared, reference["pre"])


def test_scene_codes_and_field_match_reference(tiny, reference):
    pixels = torch.from_numpy(reference["pre"]).float().div(255).unsqueeze(0)
    codes = tiny.model.encode(pixels)
    np.testing.assert_allclose(codes.numpy(), reference["codes"], rtol=FIELD_TOL, atol=FIELD_TOL)
    with torch.no_grad():
        density, color = tiny.model.field.density_and_color(codes[0], torch.from_numpy(reference["pts"]))
    np.testing.assert_allclose(density.numpy(), reference["pts_density"][:, 0], rtol=FIELD_TOL, atol=FIELD_TOL)
    np.testing.assert_allclose(color.numpy(), reference["pts_color"], rtol=FIELD_TOL, atol=FIELD_TOL)


def assert_same_mesh(result, ref_vertices, ref_colors):
    ref_vertices = model_to_blender(ref_vertices)
    assert abs(len(result.vertices) - len(ref_vertices)) <= 0.01 * len(ref_vertices)
    ours_to_ref, nearest = cKDTree(ref_vertices).query(result.vertices)
    ref_to_ours, _ = cKDTree(result.vertices).query(ref_vertices)
    assert ours_to_ref.max() < VERTEX_TOL
    assert ref_to_ours.max() < VERTEX_TOL
    difference = np.abs(result.colors.astype(int) - ref_colors[nearest].astype(int))
    assert difference.max() <= COLOR_TOL


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("reference_mode", [False, True], ids=["fast", "reference-mode"])
def test_mesh_matches_reference(tiny, reference, flamingo_path, resolution, reference_mode):
    result = generate_mesh(tiny, flamingo_path, GenerateSettings(resolution=resolution), reference_mode=reference_mode)
    assert_same_mesh(result, reference[f"v{resolution}"], reference[f"c{resolution}"])
    assert result.faces.dtype == np.int32 and result.faces.max() < len(result.vertices)
