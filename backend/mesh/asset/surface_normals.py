"""The dense surface's normals as a field that can be read at any nearby point.

The normal map needs, at each texel's point on the low-poly surface, the normal of the
dense surface there. Rather than a closest-point search (a BVH or k-d tree), the
dense surface's vertex normals are splatted with trilinear weights onto a lattice a
couple of edge lengths apart, and read back with the same weights: a few scatter and
gather operations, on any torch device. The decimated surface stays within a voxel or
so of the dense one (docs/asset.md), inside the splat's reach of two lattice cells.
"""

import torch
import torch.nn.functional as F

LATTICE_EDGES = 1.5  # lattice spacing in median edge lengths of the dense surface (measured best of 1-3)
MAX_LATTICE_NODES = 1 << 23  # 8M nodes x 4 floats = 128 MB at most


class SurfaceNormalField:
    def __init__(self, vertices: torch.Tensor, faces: torch.Tensor, spacing: float | None = None):
        p = vertices[faces]
        # area-weighted vertex normals: the cross product's length is twice the area
        face_n = torch.linalg.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), face_n.repeat_interleave(3, dim=0))
        normals = F.normalize(normals, dim=1)
        if spacing is None:
            edge = (p[:, 1] - p[:, 0]).norm(dim=1)
            spacing = LATTICE_EDGES * float(edge.median())
        low, high = vertices.min(0).values, vertices.max(0).values
        while True:
            self.origin = low - 2 * spacing
            self.dims = (((high - low) / spacing).ceil().long() + 5).tolist()
            if self.dims[0] * self.dims[1] * self.dims[2] <= MAX_LATTICE_NODES:
                break
            spacing *= 1.25
        self.spacing = spacing
        nodes = self.dims[0] * self.dims[1] * self.dims[2]
        self.sums = torch.zeros((nodes, 4), dtype=vertices.dtype, device=vertices.device)
        for node, weight in self._corners(vertices):
            values = torch.cat((normals, torch.ones_like(normals[:, :1])), dim=1) * weight[:, None]
            self.sums.index_add_(0, node, values)

    def _corners(self, points):
        """The 8 lattice nodes around each point and their trilinear weights.

        Points beyond the lattice are clamped onto its border cells; no dense vertex
        is splatted there (a two-cell margin), so they read nothing.
        """
        nx, ny, nz = self.dims
        g = (points - self.origin) / self.spacing
        upper = torch.tensor([nx - 2, ny - 2, nz - 2], device=points.device)
        base = torch.minimum(g.floor().long().clamp(min=0), upper)
        frac = (g - base).clamp(0, 1)
        index = (base[:, 0] * ny + base[:, 1]) * nz + base[:, 2]
        wx, wy, wz = ((1 - frac[:, i], frac[:, i]) for i in range(3))
        for dx in (0, 1):
            wxy = [wx[dx] * wy[0], wx[dx] * wy[1]]
            for dy in (0, 1):
                for dz in (0, 1):
                    yield index + (dx * ny + dy) * nz + dz, wxy[dy] * wz[dz]

    def __call__(self, points: torch.Tensor):
        """points (K, 3) -> (unit normals (K, 3), found (K,) bool: a dense surface is near)."""
        total = torch.zeros((points.shape[0], 4), dtype=self.sums.dtype, device=points.device)
        for node, weight in self._corners(points):
            total += self.sums[node] * weight[:, None]
        found = total[:, 3] > 1e-6
        return F.normalize(total[:, :3], dim=1), found
