"""Tiny random-weight Make-It-3D models (made once per session, seconds), loaded on the CPU,
options small enough for a job in seconds, and synthetic pictures and meshes."""

from pathlib import Path

import mcubes
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread; on a busy 2-core machine two threads fight
    (30 coarse iterations: 1.6 s on one thread, 40 s on two measured under load)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def m3d_dirs(tmp_path_factory) -> dict:
    """{slot: folder} of tiny random models (backend/test_models/make_it_3d.py)."""
    from backend.test_models.make_it_3d import make_test_models

    return make_test_models(tmp_path_factory.mktemp("make_it_3d_tiny"))


@pytest.fixture(scope="session")
def m3d_models(m3d_dirs):
    from backend.make_it_3d.loader import load_models

    return load_models(m3d_dirs, "cpu")


@pytest.fixture(scope="session")
def tiny_options():
    """Every size cut down: a whole job in seconds on a CPU with the tiny models."""
    from backend.make_it_3d.options import RefineOptions

    return RefineOptions(coarse_iterations=8, front_iterations=2, widen_iterations=4, render_size=24, samples=12,
                         fine_samples=6, sd_size=32, regulariser_points=128, surface_resolution=32, max_faces=300,
                         texture_size=128, refine_iterations=4, refine_render_size=32, preview_every=4)


@pytest.fixture(scope="session")
def disc_rgba() -> np.ndarray:
    """A 64 x 64 RGBA picture: a disc, red on its left half and blue on its right, on
    transparency."""
    size = 64
    yy, xx = np.mgrid[:size, :size]
    inside = (xx - size / 2 + 0.5) ** 2 + (yy - size / 2 + 0.5) ** 2 < (size / 3) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[inside] = (220, 40, 30, 255)
    rgba[inside & (xx >= size / 2)] = (30, 60, 220, 255)
    return rgba


@pytest.fixture(scope="session")
def tripo_model():
    """The repository's tiny TripoSR checkpoint (tests/data/tiny), loaded on the CPU."""
    from backend.pipeline import load_model

    return load_model(REPO_ROOT / "tests" / "data" / "tiny", "cpu")


@pytest.fixture(scope="session")
def sphere_mesh():
    """(vertices (N, 3) float32, faces (M, 3) int32): a sphere of radius 0.45 about the
    origin, outward winding, in any frame (it is symmetric)."""
    resolution, extent = 40, 0.6
    axis = np.linspace(-extent, extent, resolution, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)
    inside = 0.45 - np.linalg.norm(grid, axis=-1)
    vertices, faces = mcubes.marching_cubes(inside, 0.0)
    scale = 2 * extent / (resolution - 1)
    return (vertices * scale - extent).astype(np.float32), faces.astype(np.int32)


@pytest.fixture(scope="session")
def m3d_family_dir(m3d_dirs, tmp_path_factory) -> Path:
    """A folder holding Make-It-3D's four model folders, as `make-test-model make-it-3d`
    writes them: links to the repository's tiny TripoSR checkpoint and the tiny random
    guidance models (no second TripoSR made)."""
    folder = tmp_path_factory.mktemp("make_it_3d_family")
    (folder / "triposr").symlink_to(REPO_ROOT / "tests" / "data" / "tiny", target_is_directory=True)
    for path in m3d_dirs.values():
        (folder / path.name).symlink_to(path, target_is_directory=True)
    return folder


@pytest.fixture(scope="session")
def m3d_fast() -> dict:
    """The family's options cut down for a job in seconds on a CPU (and a small mesh stage)."""
    return {"family": "MAKE_IT_3D", "m3d_coarse_iterations": 6, "m3d_refine_iterations": 3, "m3d_render_size": 24,
            "m3d_resolution": 32, "m3d_preview_every": 2, "max_faces": 300, "texture_size": 128}
