"""Smooth vertex normals and per-UV-vertex tangent frames for tangent-space normal maps.

The frames follow MikkTSpace's construction (what Blender and glTF viewers use) in
its common case: each face's UV-derived tangent is projected onto the vertex normal's
plane and averaged over the faces around a UV vertex, weighted by corner angle; the
bitangent is sign x cross(normal, tangent), the sign telling mirrored UVs apart.
MikkTSpace's special cases (degenerate UVs, mirrored faces sharing a UV vertex) are
not reproduced; on our charts, flat and unmirrored, they do not arise.
"""

import torch
import torch.nn.functional as F


def corner_angles(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(M, 3) interior angle at each corner."""
    p = vertices[faces]
    angles = []
    for i in range(3):
        a = F.normalize(p[:, (i + 1) % 3] - p[:, i], dim=1)
        b = F.normalize(p[:, (i + 2) % 3] - p[:, i], dim=1)
        angles.append(torch.acos((a * b).sum(1).clamp(-1, 1)))
    return torch.stack(angles, dim=1)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Angle-weighted face normals per vertex: what Blender's smooth shading computes."""
    p = vertices[faces]
    face_n = F.normalize(torch.linalg.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), dim=1)
    weighted = face_n[:, None, :] * corner_angles(vertices, faces)[:, :, None]
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), weighted.reshape(-1, 3))
    return F.normalize(normals, dim=1)


def uv_tangents(vertices, faces, normals, corner_uvs, split_vertex, n_split):
    """-> (tangent (S, 3) unit, per split vertex; sign (M,) +-1 per face)."""
    p = vertices[faces]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    d1, d2 = corner_uvs[:, 1] - corner_uvs[:, 0], corner_uvs[:, 2] - corner_uvs[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    sign = torch.where(det < 0, -1.0, 1.0).to(vertices.dtype)
    # dP/du, up to a positive factor (1/|det|): the direction is all that is needed
    face_t = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * sign[:, None]
    n = normals[faces]  # (M, 3, 3)
    t = face_t[:, None, :] - (face_t[:, None, :] * n).sum(-1, keepdim=True) * n
    t = F.normalize(t, dim=2) * corner_angles(vertices, faces)[:, :, None]
    tangent = torch.zeros((n_split, 3), dtype=vertices.dtype, device=vertices.device)
    tangent.index_add_(0, split_vertex.reshape(-1), t.reshape(-1, 3))
    return F.normalize(tangent, dim=1), sign
