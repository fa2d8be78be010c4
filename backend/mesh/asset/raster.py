"""Rasterise triangles in UV space with torch: which texel sees which face, where.

No OpenGL and no display: every face's texel bounding box is expanded into candidate
texels with repeat_interleave (exactly w x h per face, no padding to a common size),
barycentric coordinates decide which are inside. Runs on the CPU, CUDA or MPS alike.

Texel (x, y) has its centre at UV ((x + 0.5) / T, (y + 0.5) / T); y counts from the
bottom (Blender's v up). A texel belongs to a face when its centre is inside it; with
`ring` > 0, texels whose centre lies within `ring` texels outside a chart's edge are
returned too, holding the nearest point of that face, so the texels that bilinear
filtering reads just outside a chart hold the surface's values at the chart's edge.
"""

from dataclasses import dataclass
from typing import Callable

import torch

_CANDIDATES_PER_CHUNK = 1 << 22  # ~4M candidate texels: a few hundred MB of temporaries


@dataclass
class TexelHits:
    """One entry per covered texel: texel (K,) = y * T + x, face (K,), bary (K, 3)."""

    texel: torch.Tensor
    face: torch.Tensor
    bary: torch.Tensor
    size: int

    def __len__(self) -> int:
        return self.texel.shape[0]


def rasterize(corner_uvs: torch.Tensor, size: int, ring: float = 0.0, ring_faces: torch.Tensor | None = None,
              check: Callable[[float], None] | None = None) -> TexelHits:
    """corner_uvs (M, 3, 2) in [0, 1] -> the faces' texels in a `size` x `size` image.

    Where several faces claim a texel, a face containing its centre wins over one that
    only reaches it through `ring`, and the nearest of those wins among them.
    `ring_faces` (M,) bool limits the ring to those faces: only faces on a chart's
    border can reach outside it, and the ring's wider boxes cost 2-3x the candidates.
    """
    device = corner_uvs.device
    # the per-face set-up in float64 on the CPU (Apple's MPS has no float64; a few
    # thousand faces), the per-texel work on the device
    p = corner_uvs.detach().cpu().double() * size - 0.5  # texel centres at integer coordinates
    every = torch.arange(p.shape[0])
    parts = _cover(p, every, size, 0.0, check, device)
    if ring > 0:
        border = every if ring_faces is None else ring_faces.cpu().nonzero()[:, 0]
        parts += [tuple(column[part[3] > 0] for column in part)
                  for part in _cover(p, border, size, ring, None, device)]
    if not parts:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return TexelHits(empty, empty, torch.zeros((0, 3), device=device), size)
    texel, face, bary, distance = (torch.cat(column) for column in zip(*parts, strict=True))
    keep = _nearest_per_texel(texel, distance, size)
    return TexelHits(texel[keep], face[keep], bary[keep], size)


def _cover(p, faces, size, ring, check, device):
    """Candidate texels of `faces` in chunks -> list of (texel, face, bary, distance
    outside), on `device`; p and faces on the CPU."""
    q = p[faces]
    lo = torch.ceil(q.amin(dim=1) - ring).clamp(0, size - 1).long()
    hi = torch.floor(q.amax(dim=1) + ring).clamp(0, size - 1).long()
    span = (hi - lo + 1).clamp(min=0)
    edges = _edge_functions(q, lo)
    count = torch.where(edges.valid, span[:, 0] * span[:, 1], torch.zeros_like(span[:, 0]))  # no UV area: none
    ends = torch.cumsum(count, 0)  # stays on the CPU: the chunking needs no device sync
    edges, lo, span, count, faces = edges.to(device), lo.to(device), span.to(device), count.to(device), faces.to(device)
    parts, start, total = [], 0, int(ends[-1]) if len(ends) else 0
    while start < len(count):
        # faces whose candidates fit the chunk (at least one face, however large)
        base = int(ends[start - 1]) if start else 0
        stop = max(int(torch.searchsorted(ends, base + _CANDIDATES_PER_CHUNK, right=True)), start + 1)
        texel, local, bary, beyond = _rasterize_faces(edges, lo, span, count, start, stop, size, ring)
        parts.append((texel, faces[local], bary, beyond))
        start = stop
        if check is not None and total:
            check(int(ends[stop - 1]) / total)
    return parts


@dataclass
class _EdgeFunctions:
    """Per face, barycentric w_i = gx_i * dx + gy_i * dy + w0_i at texel lo + (dx, dy),
    and height_i, the distance from corner i to the opposite edge, in texels."""

    gx: torch.Tensor
    gy: torch.Tensor
    w0: torch.Tensor
    height: torch.Tensor
    valid: torch.Tensor

    def to(self, device) -> "_EdgeFunctions":
        return _EdgeFunctions(*(getattr(self, name).to(device) for name in ("gx", "gy", "w0", "height", "valid")))


def _edge_functions(p, lo):
    """Float64 set-up per face, so the float32 work per texel stays exact enough.

    Barycentrics are signed areas over the face's signed area: positive inside for
    either winding.
    """
    a, b, c = p[:, 0], p[:, 1], p[:, 2]
    area2 = _cross(b - a, c - a)
    valid = area2.abs() > 1e-9
    safe = torch.where(valid, area2, torch.ones_like(area2))
    opposite = [(b, c), (c, a), (a, b)]  # w_i is the area of (q, opposite edge of corner i)
    gx, gy, w0 = [], [], []
    origin = lo.double()
    for s, e in opposite:
        # cross(s - q, e - q) = cross(s, e) - q x (e - s): linear in q
        d = e - s
        gx.append(-d[:, 1] / safe)
        gy.append(d[:, 0] / safe)
        w0.append((_cross(s, e) - _cross(origin, d)) / safe)
    lengths = torch.stack([(e - s).norm(dim=1) for s, e in opposite], dim=1)
    height = area2.abs()[:, None] / lengths.clamp(min=1e-12)
    stack = lambda xs: torch.stack(xs, dim=1).float()  # noqa: E731
    return _EdgeFunctions(stack(gx), stack(gy), stack(w0), height.float(), valid)


def _cross(a, b):
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _rasterize_faces(edges, lo, span, count, first, stop, size, ring):
    device = lo.device
    n = count[first:stop]
    face = torch.repeat_interleave(torch.arange(first, stop, device=device), n)
    offset = torch.arange(face.shape[0], device=device) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
    width = span[face, 0]
    dx, dy = offset % width, offset // width
    bary = edges.gx[face] * dx[:, None] + edges.gy[face] * dy[:, None] + edges.w0[face]
    if ring > 0:
        # distance outside the face, in texels: how far past its worst edge
        beyond = (-bary * edges.height[face]).amax(dim=1).clamp(min=0)
        keep = beyond <= ring
        # outside texels take the nearest point of the face (clamped barycentrics):
        # extrapolating a sliver's plane could land anywhere
        bary = bary.clamp(min=0)
        bary = bary / bary.sum(dim=1, keepdim=True).clamp(min=1e-12)
    else:
        beyond = torch.zeros(face.shape[0], device=device)
        keep = bary.amin(dim=1) >= 0
    texel = (lo[face, 1] + dy) * size + lo[face, 0] + dx
    return texel[keep], face[keep], bary[keep], beyond[keep]


def _nearest_per_texel(texel, distance, size):
    """Index of one hit per texel: the smallest distance outside its face (0 = inside)."""
    if texel.numel() == 0:
        return texel
    best = torch.full((size * size,), float("inf"), dtype=distance.dtype, device=texel.device)
    best.scatter_reduce_(0, texel, distance, reduce="amin")
    winner = distance <= best[texel]
    index = torch.arange(texel.shape[0], device=texel.device)
    # ties (a centre on a shared edge): the first hit of each texel
    first = torch.full((size * size,), texel.shape[0], device=texel.device)
    first.scatter_reduce_(0, texel[winner], index[winner], reduce="amin")
    return first[first < texel.shape[0]]


def covered_cells(points: torch.Tensor, width: int, height: int, ring: float = 0.0):
    """Cells of a width x height grid that faces cover, without choosing between faces.

    points (M, 3, 2) in cell units (cell (x, y) spans [x, x + 1] x [y, y + 1]); with
    ring = 0.71 (half a cell's diagonal) every cell a face touches is returned.
    -> (x (K,), y (K,), face (K,)), a cell repeated for each face that covers it.
    """
    p = points.double() - 0.5  # centres at integer coordinates
    side = max(width, height)
    lo = torch.ceil(p.amin(dim=1) - ring).clamp(min=0).long()
    hi = torch.floor(p.amax(dim=1) + ring).long()
    hi[:, 0] = hi[:, 0].clamp(max=width - 1)
    hi[:, 1] = hi[:, 1].clamp(max=height - 1)
    span = (hi - lo + 1).clamp(min=0)
    edges = _edge_functions(p, lo)
    count = torch.where(edges.valid, span[:, 0] * span[:, 1], torch.zeros_like(span[:, 0]))
    texel, face, _, _ = _rasterize_faces(edges, lo, span, count, 0, len(count), side, ring)
    return texel % side, texel // side, face


def cell_hits(points: torch.Tensor, width: int, height: int):
    """Cells of a width x height grid whose centre lies inside each face, with where.

    points (M, 3, 2) in cell units (cell (x, y) spans [x, x + 1] x [y, y + 1]), e.g. a
    camera's pixels (backend/make_it_3d/mesh_view.py). Every face gets its cells, with
    no choice between faces (a depth test is the caller's).
    -> (x (K,), y (K,), face (K,), bary (K, 3) float32 barycentrics in the grid's plane).
    """
    # the per-face set-up in float64 on the CPU, as rasterize(); the per-cell work on the device
    p = points.detach().cpu().double() - 0.5  # centres at integer coordinates
    side = max(width, height)
    lo = torch.ceil(p.amin(dim=1)).clamp(min=0).long()
    hi = torch.floor(p.amax(dim=1)).long()
    hi[:, 0] = hi[:, 0].clamp(max=width - 1)
    hi[:, 1] = hi[:, 1].clamp(max=height - 1)
    span = (hi - lo + 1).clamp(min=0)
    edges = _edge_functions(p, lo)
    count = torch.where(edges.valid, span[:, 0] * span[:, 1], torch.zeros_like(span[:, 0]))
    texel, face, bary, _ = _rasterize_faces(edges.to(points.device), lo.to(points.device), span.to(points.device),
                                            count.to(points.device), 0, len(count), side, 0.0)
    return texel % side, texel // side, face, bary


def overlap_fraction(corner_uvs: torch.Tensor, size: int) -> float:
    """Share of covered texels whose centre lies inside two or more faces.

    Charts must not overlap (a texel can hold one surface point only). Centres exactly
    on an edge shared by two faces count twice too, so a clean layout scores near 0,
    not exactly 0.
    """
    p = corner_uvs.double() * size - 0.5
    lo = torch.ceil(p.amin(dim=1)).clamp(0, size - 1).long()
    hi = torch.floor(p.amax(dim=1)).clamp(0, size - 1).long()
    span = (hi - lo + 1).clamp(min=0)
    edges = _edge_functions(p, lo)
    count = torch.where(edges.valid, span[:, 0] * span[:, 1], torch.zeros_like(span[:, 0]))
    texel = _rasterize_faces(edges, lo, span, count, 0, len(count), size, 0.0)[0]
    hits = torch.bincount(texel, minlength=size * size)
    covered = int((hits > 0).sum())
    return float((hits > 1).sum()) / covered if covered else 0.0
