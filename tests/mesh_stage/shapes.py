"""Synthetic surfaces and colour fields for the mesh stage's tests.

Marching cubes (PyMCubes, a backend dependency) of signed-distance shapes gives
meshes with the same structure as the model's raw surface: shared vertices, outward
winding, grid-scale triangles.
"""

import mcubes
import numpy as np
import torch


def _capsule(p, a, b, r):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1) - r


def _smooth_union(d1, d2, k=0.05):
    h = np.clip(0.5 + 0.5 * (d2 - d1) / k, 0, 1)
    return d2 * (1 - h) + d1 * h - k * h * (1 - h)


def figure_sdf(p):
    """A smooth 'creature': body, head and four limbs, about 1 unit tall, and a ring."""
    body = np.linalg.norm(p / np.array([0.22, 0.16, 0.28], np.float32), axis=-1) - 1.0
    body *= 0.16
    d = _smooth_union(body, np.linalg.norm(p - [0, 0, 0.38], axis=-1) - 0.14)
    for sx in (-1, 1):
        d = _smooth_union(d, _capsule(p, [0.18 * sx, 0, 0.1], [0.38 * sx, 0.05, -0.12], 0.05))
        d = _smooth_union(d, _capsule(p, [0.1 * sx, 0, -0.2], [0.12 * sx, 0.02, -0.48], 0.06))
    # a separate ring beside the head: a genuine second part, not a floater
    ring = np.sqrt((np.sqrt((p[..., 0] - 0.5) ** 2 + (p[..., 2] - 0.45) ** 2) - 0.09) ** 2 + p[..., 1] ** 2) - 0.025
    return np.minimum(d, ring)


def marching_cubes_mesh(sdf, resolution: int, extent: float = 0.7, specks: bool = False):
    """(vertices float32, faces int32) of sdf < 0 on a resolution^3 grid over [-extent, extent]^3.

    specks=True adds three small separate blobs around the shape (floaters).
    """
    axis = np.linspace(-extent, extent, resolution, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)
    d = sdf(grid)
    if specks:
        for centre in ([0.5, 0.3, 0.5], [-0.45, -0.4, -0.3], [0.4, -0.5, 0.0]):
            d = np.minimum(d, np.linalg.norm(grid - centre, axis=-1) - 0.02)
    vertices, faces = mcubes.marching_cubes(-d, 0.0)  # PyMCubes: outward with "inside > level"
    scale = 2 * extent / (resolution - 1)
    return (vertices * scale - extent).astype(np.float32), faces.astype(np.int32)


def sphere_sdf(p, radius=0.4):
    return np.linalg.norm(p, axis=-1) - radius


def stripes_color(points: torch.Tensor) -> torch.Tensor:
    """A smooth test colour field: rgb (K, 3) in [0, 1], features a few centimetres wide."""
    p = points.float()
    r = 0.5 + 0.4 * torch.sin(9.0 * p[:, 0] + 2.0 * p[:, 2])
    g = 0.5 + 0.4 * torch.sin(7.0 * p[:, 1] - 5.0 * p[:, 2] + 1.0)
    b = 0.5 + 0.4 * torch.cos(6.0 * p[:, 2] + 3.0 * p[:, 0])
    return torch.stack((r, g, b), dim=1)


def bumpy_sphere_sdf(p, radius=0.4, bump=0.02, frequency=14.0):
    """A sphere with bumps a decimated mesh cannot follow: what a normal map is for."""
    wave = np.sin(frequency * p[..., 0]) * np.sin(frequency * p[..., 1]) * np.sin(frequency * p[..., 2])
    return np.linalg.norm(p, axis=-1) - radius - bump * wave


def as_torch(mesh):
    """(vertices, faces) numpy -> torch (float, long)."""
    v, f = mesh
    return torch.from_numpy(np.asarray(v)), torch.from_numpy(np.asarray(f)).long()
