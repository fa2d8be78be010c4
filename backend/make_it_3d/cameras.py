"""Cameras in the model's frame and the progressive camera schedule.

The model's frame is TripoSR's: right-handed, z up, the picture's camera on +x looking
at the origin (backend/mesh/coordinates.py). A camera orbits the origin at an azimuth
(about z, 0 = the picture's view), an elevation and a distance, with a vertical field
of view; images are square, row 0 at the top, and the model's +y is the image's right.

Schedule (the paper's progressive training): every `reference_every`-th iteration is
the reference view; the others draw an azimuth within +-half_width(i) of it, where
half_width is front_half_width for the first front_iterations, then grows linearly to
180 degrees (the full circle) over widen_iterations, and stays there.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Camera:
    azimuth: float  # degrees about z from +x
    elevation: float  # degrees above the xy plane
    distance: float
    fov: float  # vertical field of view, degrees
    size: int  # pixels on a side

    @property
    def position(self) -> torch.Tensor:
        az, el = math.radians(self.azimuth), math.radians(self.elevation)
        return self.distance * torch.tensor([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])

    def basis(self, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(right, up, forward) unit vectors: forward looks at the origin, up is near +z."""
        forward = F.normalize(-self.position, dim=0)
        right = F.normalize(torch.linalg.cross(forward, torch.tensor([0.0, 0.0, 1.0])), dim=0)
        up = torch.linalg.cross(right, forward)
        return right.to(device), up.to(device), forward.to(device)

    @property
    def focal(self) -> float:
        """Pixels per unit of (x / depth)."""
        return self.size / (2.0 * math.tan(math.radians(self.fov) / 2.0))

    def rays(self, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(origins (S*S, 3), unit directions (S*S, 3)) through the pixel centres, row by row."""
        right, up, forward = self.basis(device)
        centres = (torch.arange(self.size, device=device, dtype=torch.float32) + 0.5 - self.size / 2) / self.focal
        rows, cols = torch.meshgrid(centres, centres, indexing="ij")
        directions = forward + cols.reshape(-1, 1) * right - rows.reshape(-1, 1) * up
        origins = self.position.to(device).expand(directions.shape[0], 3)
        return origins, F.normalize(directions, dim=1)

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """points (N, 3) -> (column, row, depth along the view): pixel units, the first
        pixel's centre at (0.5, 0.5)."""
        right, up, forward = self.basis(points.device)
        offset = points - self.position.to(points.device)
        depth = offset @ forward
        column = self.size / 2 + self.focal * (offset @ right) / depth
        row = self.size / 2 - self.focal * (offset @ up) / depth
        return column, row, depth


def reference_camera(options, size: int | None = None) -> Camera:
    return Camera(0.0, 0.0, options.reference_distance, options.reference_fov, size or options.render_size)


def half_width(iteration: int, options) -> float:
    """Degrees either side of the reference view that novel cameras reach at `iteration`."""
    start = options.front_half_width
    if iteration < options.front_iterations:
        return start
    if options.widen_iterations <= 0:
        return 180.0
    progress = min(1.0, (iteration - options.front_iterations) / options.widen_iterations)
    return start + (180.0 - start) * progress


def is_reference(iteration: int, options) -> bool:
    return iteration % options.reference_every == 0


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, device=generator.device))


def novel_camera(iteration: int, options, generator: torch.Generator, size: int | None = None,
                 width: float | None = None) -> Camera:
    """A random camera of the schedule at `iteration` (or within +-width degrees)."""
    width = half_width(iteration, options) if width is None else width
    azimuth = _uniform(generator, -width, width)
    elevation = _uniform(generator, *options.elevation_range)
    distance = options.reference_distance * _uniform(generator, *options.distance_scale)
    fov = options.reference_fov * _uniform(generator, *options.fov_scale)
    return Camera(azimuth, elevation, distance, fov, size or options.render_size)


def camera_for(iteration: int, options, generator: torch.Generator) -> tuple[Camera, bool]:
    """(camera, is the reference view) of a coarse-stage iteration."""
    if is_reference(iteration, options):
        return reference_camera(options), True
    return novel_camera(iteration, options, generator), False
