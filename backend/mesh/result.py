"""What every job hands back, whatever its family: the mesh in Blender's frame, its colours
and, from the mesh stage, a UV map and textures."""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MeshResult:
    vertices: np.ndarray  # (N, 3) float32, Blender frame
    faces: np.ndarray  # (M, 3) int32, outward winding
    colors: np.ndarray  # (N, 4) uint8 RGBA
    prepared_image: np.ndarray  # (H, W, 3) uint8, what the model saw
    timings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # warnings for the user (e.g. a tiny object)
    # with a texture (settings.texture_size > 0), from the mesh stage (backend/mesh/asset/):
    uvs: np.ndarray | None = None  # (M, 3, 2) float32, per face corner, v up (Blender's)
    base_color: np.ndarray | None = None  # (T, T, 3) uint8 sRGB, top row first
    normal_map: np.ndarray | None = None  # (T, T, 3) uint8 tangent space, top row first; None when off
