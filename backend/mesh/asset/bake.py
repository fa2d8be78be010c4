"""Bake textures on the low-poly mesh's UV layout: base colour and tangent-space normals.

Base colour: each texel's own point on the surface is sent to the model's colour
field (not colours interpolated between vertices), so the texture holds detail finer
than the triangles. Normal map: at each texel, the dense surface's normal (from
surface_normals.py) written in the low-poly surface's tangent frame (tangents.py),
as glTF and Blender read it (x right along +u, y up along +v, z out; RGB = xyz * 0.5
+ 0.5). Both are filled outside the charts (padding.py) and returned as (T, T, 3)
uint8 with row 0 at the top (v = 1), as image files store them.
"""

from typing import Callable

import torch
import torch.nn.functional as F

from .padding import fill_empty
from .raster import TexelHits

ColorFn = Callable[[torch.Tensor], torch.Tensor]
# z of a tangent-space normal is kept above this: a detail normal facing away from
# the low-poly normal (a fold the decimation cut off) cannot be shown anyway
_MIN_NORMAL_Z = 0.05


def texel_points(vertices: torch.Tensor, faces: torch.Tensor, hits: TexelHits) -> torch.Tensor:
    """(K, 3) point on the surface of each texel hit."""
    corners = vertices[faces[hits.face]]  # (K, 3, 3)
    return (corners * hits.bary[:, :, None].to(vertices.dtype)).sum(dim=1)


def bake_color(points: torch.Tensor, hits: TexelHits, color_at: ColorFn, chunk: int = 1 << 16,
               check: Callable[[float], None] | None = None) -> torch.Tensor:
    """(T, T, 3) uint8 base colour from `color_at` (points (K, 3) -> rgb (K, 3) in [0, 1])."""
    rgb = torch.empty((points.shape[0], 3), dtype=torch.float32, device=points.device)
    for start in range(0, points.shape[0], chunk):
        with torch.no_grad():
            rgb[start:start + chunk] = color_at(points[start:start + chunk]).float().clamp(0, 1)
        if check is not None:
            check(min(1.0, (start + chunk) / points.shape[0]))
    return to_image(rgb, hits)


def bake_normals(points, hits: TexelHits, faces, normals, tangents, sign, split_vertex,
                 detail_normal_at, chunk: int = 1 << 20, check: Callable[[float], None] | None = None) -> torch.Tensor:
    """(T, T, 3) uint8 tangent-space normal map.

    normals (N, 3): the low-poly vertex normals the renderer interpolates; tangents
    (S, 3) per split vertex and sign (M,) per face (tangents.uv_tangents);
    detail_normal_at(points) -> (unit normals, found) from the dense surface. Texels go
    in chunks: at 8192^2 there are 28M of them, and a dozen (K, 3) temporaries.
    """
    local = torch.empty((points.shape[0], 3), dtype=torch.float32, device=points.device)
    for start in range(0, points.shape[0], chunk):
        part = slice(start, start + chunk)
        face = hits.face[part]
        w = hits.bary[part, :, None].to(normals.dtype)
        n = F.normalize((normals[faces[face]] * w).sum(1), dim=1)
        t = (tangents[split_vertex[face]] * w).sum(1)
        t = F.normalize(t - (t * n).sum(1, keepdim=True) * n, dim=1)  # Gram-Schmidt, as shaders do
        b = torch.linalg.cross(n, t) * sign[face, None]
        detail, found = detail_normal_at(points[part])
        detail = torch.where(found[:, None], detail, n)  # no dense surface near: flat
        xyz = torch.stack(((detail * t).sum(1), (detail * b).sum(1), (detail * n).sum(1)), dim=1)
        xyz[:, 2] = xyz[:, 2].clamp(min=_MIN_NORMAL_Z)
        local[part] = F.normalize(xyz, dim=1)
        if check is not None:
            check(min(1.0, (start + chunk) / points.shape[0]))
    return to_image(local * 0.5 + 0.5, hits)


def to_image(values: torch.Tensor, hits: TexelHits) -> torch.Tensor:
    """Texel values (K, C) in [0, 1] -> (T, T, C) uint8, empty texels filled, top row first."""
    size = hits.size
    image = torch.zeros((size * size, values.shape[1]), dtype=torch.float32, device=values.device)
    image[hits.texel] = values.float()
    filled = torch.zeros(size * size, dtype=torch.bool, device=values.device)
    filled[hits.texel] = True
    image = fill_empty(image.view(size, size, -1), filled.view(size, size))
    return (image.flip(0).clamp(0, 1) * 255).round().to(torch.uint8)
