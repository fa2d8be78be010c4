"""The toy sphere's engine: a signed distance on a grid, the shared marching cubes, and a
colour field that is the outward normal mapped to RGB."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.families.engine_api import JobInput, StageClock, Surface
from backend.mesh.surface import extract_mesh
from backend.prepare.images import open_image, to_rgba8


@dataclass
class LoadedSphere:
    family = "TOY_SPHERE"
    task: str
    device: str
    model_dir: Path
    load_seconds: float
    precision: str
    weights_bytes: int = 0


def load(folders: dict, task: str, device: torch.device, precision: str = "float32") -> LoadedSphere:
    return LoadedSphere(task, device.type, folders["toy_sphere"], 0.0, precision)


def normal_colors(points: torch.Tensor) -> torch.Tensor:
    """rgb in [0, 1]: the direction from the centre (the sphere's normal) mapped to colour."""
    return (torch.nn.functional.normalize(points.float(), dim=-1) + 1.0) / 2.0


def run(loaded: LoadedSphere, job: JobInput, settings, clock: StageClock, chunk_size=None, **extras) -> Surface:
    clock.start("prepare")
    prepared = to_rgba8(open_image(job.image))[..., :3]  # a bad picture fails as for every family
    clock.done("prepare")
    clock.start("field")
    n, extent = settings.sphere_resolution, 1.0
    axis = torch.linspace(-extent, extent, n)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)
    density = settings.sphere_radius - grid.norm(dim=-1)  # > 0 inside
    clock.done("field")
    clock.start("surface")
    vertices, faces = extract_mesh(density, 0.0, extent)
    clock.done("surface")

    def vertex_colors():
        rgb = (normal_colors(torch.from_numpy(vertices)) * 255).round().to(torch.uint8).numpy()
        return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)

    return Surface(vertices, faces, normal_colors, vertex_colors, prepared, [])
