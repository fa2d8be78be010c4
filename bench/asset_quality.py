"""Quality measures of the mesh stage's output (benchmark and tests; not shipped).

Each measure samples points uniformly by area on the low-poly surface and compares
what a renderer would show there with the truth:
- colour: the base-colour texture, sampled bilinearly at the point's UV as a GPU
  does, against the colour field at the same 3-D point (0..255 units, the largest of
  the three channel differences).
- shading: the normal a renderer rebuilds from the normal map (interpolated vertex
  normal and tangent, Gram-Schmidt, bitangent = sign x cross(n, t), as Blender and
  glTF viewers do) against the smooth-shaded dense surface's normal at the nearest
  dense point; as an angle and as the difference of Lambert shading max(0, n.l) under
  four fixed lights, in 0..255 units (what a viewer sees).
- geometry: distances between two surfaces, both ways, as a share of the reference's
  bounding-box diagonal (p99 is the target's measure).

`result` is anything with vertices, faces, uvs, base_color, normal_map (a MeshResult).
"""

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from backend.mesh.asset.tangents import uv_tangents, vertex_normals
from backend.mesh.asset.unwrap import split_by_uv

LIGHTS = F.normalize(torch.tensor([[0.3, -0.8, 0.5], [-0.6, -0.4, 0.7], [0.7, 0.2, 0.7], [0.0, 0.0, 1.0]]), dim=1)
CANDIDATE_FACES = 16  # nearest surface samples whose faces are measured exactly
NEAREST_VERTICES = 3  # ... and the faces around this many nearest vertices


def sample_surface(vertices: torch.Tensor, faces: torch.Tensor, count: int, seed: int = 0):
    """-> (face (K,), bary (K, 3), points (K, 3)): uniform by area."""
    g = torch.Generator().manual_seed(seed)
    p = vertices[faces].double()
    area = 0.5 * torch.linalg.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]).norm(dim=1)
    face = torch.multinomial(area, count, replacement=True, generator=g)
    r1, r2 = torch.rand(count, generator=g), torch.rand(count, generator=g)
    s = r1.sqrt()
    bary = torch.stack((1 - s, s * (1 - r2), s * r2), dim=1)
    points = (vertices[faces][face] * bary[:, :, None]).sum(1)
    return face, bary, points


def sample_texture(image: np.ndarray, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup, GL_LINEAR with clamp, of a (T, T, C) uint8 image stored top row
    first, at Blender UVs (v up). -> (K, C) float in 0..255."""
    t = torch.from_numpy(np.ascontiguousarray(image)).float().permute(2, 0, 1)[None]
    grid = torch.stack((uv[:, 0] * 2 - 1, (1 - uv[:, 1]) * 2 - 1), dim=1)[None, None].float()
    out = F.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0].T


def _arrays(result):
    return (torch.from_numpy(np.asarray(result.vertices, np.float32)), torch.from_numpy(np.asarray(result.faces)).long(),
            torch.from_numpy(np.asarray(result.uvs, np.float32)))


def color_errors(result, color_at, count: int = 100_000, seed: int = 0) -> dict:
    """Texture (and, for comparison, interpolated-vertex-colour) error against the field."""
    v, f, uvs = _arrays(result)
    face, bary, points = sample_surface(v, f, count, seed)
    truth = color_at(points).float().cpu().clamp(0, 1) * 255
    uv = (uvs[face] * bary[:, :, None]).sum(1)
    err = (sample_texture(result.base_color, uv) - truth).abs().amax(dim=1)
    vertex_rgb = color_at(v).float().cpu().clamp(0, 1) * 255
    by_vertex = (vertex_rgb[f[face]] * bary[:, :, None]).sum(1)
    err_v = (by_vertex.round() - truth).abs().amax(dim=1)
    return {"texture_median": float(err.median()), "texture_p95": float(err.quantile(0.95)),
            "vertex_colour_median": float(err_v.median()), "vertex_colour_p95": float(err_v.quantile(0.95))}


def rebuilt_normals(result, face, bary):
    """(mapped, plain): the shading normal a renderer rebuilds at each sample with the
    normal map, and the plain smooth-shaded low-poly normal."""
    v, f, uvs = _arrays(result)
    normals = vertex_normals(v, f)
    split_vertex, split_source, _ = split_by_uv(f, uvs)
    tangents, sign = uv_tangents(v, f, normals, uvs, split_vertex, split_source.shape[0])
    w = bary[:, :, None].float()
    n = F.normalize((normals[f[face]] * w).sum(1), dim=1)
    t = (tangents[split_vertex[face]] * w).sum(1)
    t = F.normalize(t - (t * n).sum(1, keepdim=True) * n, dim=1)
    b = torch.linalg.cross(n, t) * sign[face, None]
    local = sample_texture(result.normal_map, (uvs[face] * w).sum(1)) / 255 * 2 - 1
    return F.normalize(local[:, :1] * t + local[:, 1:2] * b + local[:, 2:3] * n, dim=1), n


def shading_errors(result, dense_vertices, dense_faces, count: int = 100_000, seed: int = 1) -> dict:
    """Normal-map shading against the dense surface's smooth shading, with the plain
    low-poly shading (no normal map) as the baseline it should beat."""
    v, f, _ = _arrays(result)
    face, bary, points = sample_surface(v, f, count, seed)
    mapped, plain = rebuilt_normals(result, face, bary)
    reference = dense_normals_at(dense_vertices, dense_faces, points.numpy())
    shade = lambda a: (a @ LIGHTS.T).clamp(min=0)  # noqa: E731
    out = {}
    for name, normal in (("normal_map", mapped), ("no_map", plain)):
        angle = torch.rad2deg(torch.acos((normal * reference).sum(1).clamp(-1, 1)))
        diff = (shade(normal) - shade(reference)).abs().mean(1) * 255
        out[name] = {"angle_median": float(angle.median()), "angle_p95": float(angle.quantile(0.95)),
                     "shading_median": float(diff.median()), "shading_p95": float(diff.quantile(0.95))}
    return out


def dense_normals_at(vertices, faces, points):
    """Smooth-shaded normal of the dense mesh at its point nearest to each point: the
    nearest face (by centroid; dense faces are a fraction of a voxel) and its
    area-weighted vertex normals interpolated at the point's projection."""
    v = torch.from_numpy(np.asarray(vertices, np.float32))
    f = torch.from_numpy(np.asarray(faces)).long()
    p = v[f]
    face_n = torch.linalg.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    vn = F.normalize(torch.zeros_like(v).index_add_(0, f.reshape(-1), face_n.repeat_interleave(3, 0)), dim=1)
    _, nearest = cKDTree(p.mean(1).numpy()).query(points, k=1)
    nearest = torch.from_numpy(nearest).long()
    q = torch.from_numpy(points).float()
    bary = _barycentric(q, p[nearest, 0], p[nearest, 1], p[nearest, 2]).clamp(min=0)
    bary = bary / bary.sum(1, keepdim=True).clamp(min=1e-12)
    return F.normalize((vn[f[nearest]] * bary[:, :, None]).sum(1), dim=1)


def _barycentric(q, a, b, c):
    """Barycentric coordinates of q's projection onto the plane of (a, b, c)."""
    v0, v1, v2 = b - a, c - a, q - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    den = (d00 * d11 - d01 * d01).clamp(min=1e-20)
    y = (d11 * d20 - d01 * d21) / den
    z = (d00 * d21 - d01 * d20) / den
    return torch.stack((1 - y - z, y, z), dim=-1)


def point_triangle_distance(q, a, b, c):
    """Exact distance from points q to triangles (a, b, c), all (..., 3): the plane's
    distance when the projection falls inside, else the nearest of the three edges."""
    inside = (_barycentric(q, a, b, c) >= 0).all(-1)
    n = F.normalize(torch.linalg.cross(b - a, c - a), dim=-1)
    plane = ((q - a) * n).sum(-1).abs()

    def segment(s, e):
        d = e - s
        t = (((q - s) * d).sum(-1) / (d * d).sum(-1).clamp(min=1e-30)).clamp(0, 1)
        return (q - (s + t[..., None] * d)).norm(dim=-1)

    edges = torch.minimum(torch.minimum(segment(a, b), segment(b, c)), segment(c, a))
    return torch.where(inside, plane, edges)


def distances_to_surface(points, vertices, faces, samples: int = 1_000_000) -> np.ndarray:
    """Distance from each point to the surface (vertices, faces): exact distances to two
    sets of candidate faces, the smallest taken: the faces of the CANDIDATE_FACES
    nearest of many area-uniform samples and face centroids, and every face around the
    three nearest vertices (which catches a point near a small face whose own samples are
    crowded out by its neighbours'). A mesh measured against itself gives under 1e-6 %
    of the diagonal at every sample (tests/mesh_stage/test_bake.py)."""
    v = torch.from_numpy(np.asarray(vertices, np.float64))
    f = torch.from_numpy(np.asarray(faces)).long()
    face, _, sampled = sample_surface(v, f, samples, seed=7)
    owner = torch.cat((face, torch.arange(len(f))))
    samples_tree = cKDTree(torch.cat((sampled, v[f].mean(1))).numpy())
    vertex_tree, ring = cKDTree(v.numpy()), _faces_around_vertices(f, len(v))
    points = np.asarray(points, np.float64)
    out = []
    for start in range(0, len(points), 1 << 14):
        part = points[start:start + (1 << 14)]
        _, nearest = samples_tree.query(part, k=CANDIDATE_FACES)
        _, vertex = vertex_tree.query(part, k=NEAREST_VERTICES)
        candidates = torch.cat((owner[torch.from_numpy(nearest)], ring[torch.from_numpy(vertex)].flatten(1)), dim=1)
        corners = v[f[candidates.clamp(min=0)]]  # (K, C, 3, 3)
        q = torch.from_numpy(part)[:, None, :].expand(-1, candidates.shape[1], -1)
        d = point_triangle_distance(q, corners[..., 0, :], corners[..., 1, :], corners[..., 2, :])
        out.append(torch.where(candidates >= 0, d, torch.inf).min(dim=1).values.numpy())
    return np.concatenate(out)


def _faces_around_vertices(faces: torch.Tensor, n_vertices: int) -> torch.Tensor:
    """(N, most faces at a vertex) the faces around each vertex, padded with -1."""
    corner_vertex = faces.reshape(-1)
    order = torch.argsort(corner_vertex, stable=True)
    count = torch.bincount(corner_vertex, minlength=n_vertices)
    first = torch.cumsum(count, 0) - count
    slot = torch.arange(len(order)) - first[corner_vertex[order]]
    table = torch.full((n_vertices, int(count.max())), -1, dtype=torch.long)
    table[corner_vertex[order], slot] = order // 3
    return table


def surface_distances(a_vertices, a_faces, b_vertices, b_faces, samples: int = 200_000, cloud: int = 1_000_000) -> dict:
    """Symmetric surface distances between mesh a and the reference b, in % of b's
    bounding-box diagonal, over `samples` area-uniform points of each (`cloud`: the
    candidate search's samples, see distances_to_surface)."""
    diag = float(np.linalg.norm(np.ptp(np.asarray(b_vertices), axis=0)))
    both = []
    for (sv, sf), (tv, tf) in (((a_vertices, a_faces), (b_vertices, b_faces)), ((b_vertices, b_faces), (a_vertices, a_faces))):
        _, _, points = sample_surface(torch.from_numpy(np.asarray(sv, np.float64)), torch.from_numpy(np.asarray(sf)).long(),
                                      samples, seed=3)
        both.append(distances_to_surface(points.numpy(), tv, tf, cloud))
    both = np.concatenate(both) / diag * 100
    return {"median_pct": float(np.median(both)), "p99_pct": float(np.percentile(both, 99)), "max_pct": float(both.max())}
