"""Surface extraction: the fast sparse grid against the dense one, winding, empty results."""

import numpy as np
import pytest
import torch

from backend.bridge.errors import Cancelled, EmptySurfaceError
from backend.bridge.settings import GenerateSettings
from backend.mesh.surface import dense_density_grid, extract_mesh, sparse_density_grid
from backend.pipeline import generate_mesh, load_model


@pytest.fixture(scope="module")
def tiny_codes(tiny_model_dir):
    loaded = load_model(tiny_model_dir, "cpu")
    reference = np.load(tiny_model_dir / "reference.npz")
    codes = loaded.model.encode(torch.from_numpy(reference["pre"]).float().div(255).unsqueeze(0))[0]
    return loaded, codes


@pytest.mark.parametrize("resolution, stride", [(96, 4), (97, 8)])
def test_sparse_grid_equals_dense_grid_wherever_the_surface_is(tiny_codes, resolution, stride):
    loaded, codes = tiny_codes
    field = loaded.model.field
    dense = dense_density_grid(field, codes, resolution)
    sparse = sparse_density_grid(field, codes, resolution, 25.0, chunk=50_000, stride=stride)
    # same side of the level everywhere, so marching cubes finds the same cells ...
    assert torch.equal(dense > 25.0, sparse > 25.0)
    v_dense, f_dense = extract_mesh(dense, 25.0, field.radius)
    v_sparse, f_sparse = extract_mesh(sparse, 25.0, field.radius)
    # ... and the very same mesh: every cell with a sign change has the dense grid's
    # corner values, to the bit
    np.testing.assert_array_equal(v_sparse, v_dense)
    np.testing.assert_array_equal(f_sparse, f_dense)


def test_faces_point_outward(tiny_codes, flamingo_path):
    loaded, _ = tiny_codes
    result = generate_mesh(loaded, flamingo_path, GenerateSettings(resolution=48))
    triangles = result.vertices[result.faces].astype(np.float64)
    # signed volume > 0 means counter-clockwise seen from outside (outward normals)
    signed_volume = np.einsum("ij,ij->i", triangles[:, 0], np.cross(triangles[:, 1], triangles[:, 2])).sum() / 6
    assert signed_volume > 0


def test_empty_and_full_volumes_are_clear_errors():
    with pytest.raises(EmptySurfaceError, match="lower the threshold"):
        extract_mesh(torch.zeros(8, 8, 8), 25.0, 0.87)
    with pytest.raises(EmptySurfaceError, match="raise the threshold"):
        extract_mesh(torch.full((8, 8, 8), 100.0), 25.0, 0.87)


def test_cancel_between_chunks(tiny_codes):
    loaded, codes = tiny_codes
    calls = []

    def should_cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        sparse_density_grid(loaded.model.field, codes, 64, 25.0, chunk=1000, should_cancel=should_cancel)
    assert len(calls) == 3
