"""Shared by the mesh stage's unit tests: synthetic surfaces (no model needed)."""

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))  # asset_quality: the benchmark's measures, shared

from shapes import figure_sdf, marching_cubes_mesh, sphere_sdf  # noqa: E402


@pytest.fixture(scope="session")
def figure():
    """The test creature with three specks around it, (vertices, faces) numpy."""
    return marching_cubes_mesh(figure_sdf, 72, specks=True)


@pytest.fixture(scope="session")
def sphere():
    return marching_cubes_mesh(sphere_sdf, 48)
