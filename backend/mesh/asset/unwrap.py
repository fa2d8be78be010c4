"""UV unwrap: per-corner UVs in one square atlas, and the seam-split form for files.

Box-projection charts (charts.py) packed by their shapes (packing.py): tens of
milliseconds for 20k faces on one CPU thread, where xatlas takes 0.7-6 s for the same
colour error (docs/asset.md compares them).

UV convention: Blender's (u right, v up, (0, 0) the image's lower-left corner).
glTF puts v = 0 at the top: its writer stores 1 - v.
"""

from dataclasses import dataclass

import torch

from .charts import box_charts, face_adjacency, project_charts
from .packing import chart_outline, orient_charts, pack_charts


@dataclass
class UVLayout:
    """corner_uvs (M, 3, 2) float32: the UV of each face corner. Blender stores UVs per
    corner (loop), so vertices stay shared and shading stays smooth across seams.

    split_vertex (M, 3) long, split_source (S,) long, split_uvs (S, 2): the same layout
    with one vertex per (vertex, chart) pair, as glTF needs; split_source[i] is the
    original vertex of split vertex i. chart (M,) long: the chart of each face.
    """

    corner_uvs: torch.Tensor
    chart: torch.Tensor
    split_vertex: torch.Tensor
    split_source: torch.Tensor
    split_uvs: torch.Tensor

    @property
    def chart_count(self) -> int:
        return int(self.chart.max()) + 1 if self.chart.numel() else 0

    def border_faces(self) -> torch.Tensor:
        """(M,) bool: faces with an edge on a chart's border (an edge no other face shares in UV)."""
        edges = torch.sort(self.split_vertex[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), dim=1).values
        key = edges[:, 0] * (self.split_source.shape[0] + 1) + edges[:, 1]
        _, group, count = torch.unique(key, return_inverse=True, return_counts=True)
        return (count[group] == 1).view(-1, 3).any(dim=1)


def gutter_for(texture_size: int) -> int:
    """Empty texels around each chart: 2 at 1024, more for larger textures."""
    return max(2, round(2 * texture_size / 1024))


def unwrap(vertices: torch.Tensor, faces: torch.Tensor, texture_size: int) -> UVLayout:
    """Charts and their packing for a `texture_size` square texture."""
    adjacency = face_adjacency(faces)
    chart, direction = box_charts(vertices, faces, adjacency)
    n_charts = int(chart.max()) + 1
    coords = orient_charts(project_charts(vertices, faces, direction), chart, n_charts)
    corner_uvs = pack_charts(coords, chart, n_charts, texture_size, gutter_for(texture_size),
                             chart_outline(chart, adjacency)).float()
    # a box chart is flat and connected: a vertex has one UV per chart
    split_vertex, split_source = split_by_chart(faces, chart, n_charts)
    split_uvs = torch.zeros((split_source.shape[0], 2), device=corner_uvs.device)
    split_uvs[split_vertex.reshape(-1)] = corner_uvs.reshape(-1, 2)
    return UVLayout(corner_uvs, chart, split_vertex, split_source, split_uvs)


def split_by_chart(faces: torch.Tensor, chart: torch.Tensor, n_charts: int):
    """One vertex per (vertex, chart) pair: (split_vertex (M, 3), split_source (S,))."""
    key = faces.long() * n_charts + chart[:, None]
    unique, inverse = torch.unique(key.reshape(-1), return_inverse=True)
    return inverse.reshape(-1, 3), unique // n_charts


def split_by_uv(faces: torch.Tensor, corner_uvs: torch.Tensor):
    """The seam-split form of any per-corner UV layout (a file's, the worker's result):
    one vertex per distinct (vertex, UV) pair -> (split_vertex (M, 3), split_source (S,),
    split_uvs (S, 2))."""
    rows = torch.cat((faces.reshape(-1, 1).double(), corner_uvs.reshape(-1, 2).double()), dim=1)
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    return inverse.reshape(-1, 3), unique[:, 0].long(), unique[:, 1:].float()
