"""Our torch marching cubes (the GPU path) against PyMCubes (the CPU path)."""

import mcubes
import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from backend.mesh.marching_cubes import marching_cubes_torch, triangle_table


def sphere(n):
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n)] * 3, indexing="ij")
    return (1 - (x**2 + y**2 + z**2)).astype(np.float32)


def signed_volume(vertices, faces):
    tri = vertices[faces].astype(np.float64)
    return np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_vertices_as_pymcubes_on_random_fields(seed):
    volume = np.random.default_rng(seed).standard_normal((20, 23, 25)).astype(np.float32)
    ref_vertices, _ = mcubes.marching_cubes(volume, 0.3)
    vertices, faces = marching_cubes_torch(torch.from_numpy(volume), 0.3)
    vertices = vertices.numpy()
    assert len(vertices) == len(ref_vertices)
    assert cKDTree(ref_vertices).query(vertices)[0].max() < 1e-5
    assert cKDTree(vertices).query(ref_vertices)[0].max() < 1e-5
    assert faces.min() >= 0 and faces.max() < len(vertices)


def test_surface_is_closed_and_consistently_wound():
    # a field whose surface stays inside the grid: every edge must be shared by exactly
    # two triangles that run along it in opposite directions
    volume = np.random.default_rng(5).standard_normal((18, 18, 18)).astype(np.float32)
    volume[[0, -1], :, :] = volume[:, [0, -1], :] = volume[:, :, [0, -1]] = -10
    _, faces = marching_cubes_torch(torch.from_numpy(volume), 0.2)
    faces = faces.numpy()
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    assert len({tuple(e) for e in directed}) == len(directed)
    assert {tuple(e) for e in directed} == {(b, a) for a, b in directed}


def test_sphere_matches_pymcubes_and_faces_outward():
    volume = sphere(40)
    ref_vertices, ref_faces = mcubes.marching_cubes(volume, 0.3)
    vertices, faces = marching_cubes_torch(torch.from_numpy(volume), 0.3)
    vertices, faces = vertices.numpy(), faces.numpy()
    assert len(faces) == len(ref_faces)
    centred = vertices - vertices.mean(0)
    assert signed_volume(centred, faces) > 0
    assert signed_volume(centred, faces) == pytest.approx(signed_volume(ref_vertices - ref_vertices.mean(0), ref_faces), rel=1e-6)


def test_table_covers_every_pattern():
    table = triangle_table()
    assert len(table) == 256
    assert all(all(x < 0 for x in table[p]) for p in (0, 255))
    assert all(any(x >= 0 for x in table[p]) for p in range(1, 255))
