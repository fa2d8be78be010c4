"""Our backend against the numbers the reference implementation computed: the tiny case
(copied from ../shared, see tests/data/tiny/SOURCE.md) and the reference's preparation of
the drawn pictures (tests/data/prepare_reference/README.md)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pictures import digest, picture, unframe
from PIL import Image
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
PREPARE_REFERENCE = Path(__file__).parent / "data" / "prepare_reference" / "reference.npz"
PREPARE_CASES = [key for key in np.load(PREPARE_REFERENCE).files if "@" in key]  # "<picture>@<ratio>"


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    return np.load(tiny_model_dir / "reference.npz")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir, "cpu")


@pytest.fixture(scope="module")
def prepare_reference():
    return np.load(PREPARE_REFERENCE)


@pytest.mark.parametrize("case", PREPARE_CASES)
def test_prepared_image_equals_reference(prepare_reference, case, tmp_path):
    name, ratio = case.split("@")
    pixels = picture(name)
    assert digest(pixels) == prepare_reference[f"{name}.sha256"], (
        f"tests/pictures.py draws {name} differently now: run tests/data/prepare_reference/make_reference.py again")
    Image.fromarray(pixels).save(tmp_path / f"{name}.png")
    prepared = prepare_image(tmp_path / f"{name}.png", float(ratio), remove_background=True)
    np.testing.assert_array_equal(prepared, prepare_reference[case])


@pytest.fixture(scope="module")
def reference_input(reference, tmp_path_factory):
    """A picture that prepares to the reference's prepared image `pre` (asserted where used),
    so the meshes below start from exactly what the reference's model saw."""
    path = tmp_path_factory.mktemp("reference_input") / "pre_unframed.png"
    Image.fromarray(unframe(reference["pre"], 0.85)).save(path)
    return path


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
def test_mesh_matches_reference(tiny, reference, reference_input, resolution, reference_mode):
    result = generate_mesh(tiny, reference_input, GenerateSettings(resolution=resolution), reference_mode=reference_mode)
    np.testing.assert_array_equal(result.prepared_image, reference["pre"])
    assert_same_mesh(result, reference[f"v{resolution}"], reference[f"c{resolution}"])
    assert result.faces.dtype == np.int32 and result.faces.max() < len(result.vertices)
