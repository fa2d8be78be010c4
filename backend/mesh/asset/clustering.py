"""Vertex clustering with quadric-placed representatives: a fast, vectorised first cut.

The vertices in each cubic cell merge into one. Where that one goes is what decides
the error: the mean of the cell's vertices rounds every edge and corner off, while the
point that minimises the summed squared distances to the planes of the cell's faces
(Garland and Heckbert's quadric, used this way by Lindstrom, "Out-of-core
simplification of large polygonal models", 2000) stays on them. A flat cell has no
single such point, so the solve is pulled towards the mean by a small multiple of the
identity: on a plane it lands on the plane at the mean, on a crease on the crease.

Torch only and no loop over cells: a few scatter-adds and a closed-form 3 x 3 solve, on
the CPU, CUDA or MPS alike (float32 throughout, coordinates taken about each cell's
mean so the products stay well scaled).
"""

import torch

# pull towards the mean, relative to the cell's total face area: directions in which
# the planes constrain the point less than this stay at the mean
REGULARIZE = 1e-3


def cluster_vertices(vertices: torch.Tensor, faces: torch.Tensor, cell: float, quadric: bool = True):
    """Merge the vertices of each cubic cell of side `cell` -> (vertices, faces).

    quadric: place each merged vertex at its cell's quadric minimum (else at the mean).
    Faces that collapse (two corners in one cell) and repeated faces are dropped, and so
    are vertices no face uses.
    """
    grid = ((vertices - vertices.min(0).values) / cell).floor().long()
    dims = grid.max(0).values + 1
    key = (grid[:, 0] * dims[1] + grid[:, 1]) * dims[2] + grid[:, 2]
    _, cluster = torch.unique(key, return_inverse=True)
    n = int(cluster.max()) + 1
    count = torch.zeros(n, dtype=vertices.dtype, device=vertices.device).index_add_(
        0, cluster, torch.ones_like(vertices[:, 0]))
    merged = torch.zeros((n, 3), dtype=vertices.dtype, device=vertices.device).index_add_(0, cluster, vertices)
    merged /= count[:, None]
    if quadric:
        merged = merged + _quadric_offsets(vertices, faces, cluster, merged, cell)
    f = cluster[faces]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    # two faces on the same three vertices (a part thinner than a cell, flattened):
    # keep the first, a one-sided sheet, rather than two coinciding faces
    f = f[_first_of_each(torch.sort(f, dim=1).values, n)]
    return _drop_unused(merged, f)


def _quadric_offsets(vertices, faces, cluster, mean, cell):
    """Per cell, the offset from its mean to the point nearest (in the least-squares
    sense) the planes of the faces around its vertices, each weighted by its area.

    Worked on rows (coordinate-major): each product is then one contiguous pass, which
    on one CPU thread is several times faster than the same arithmetic on columns.
    """
    rows = vertices.T.contiguous()
    a, b, c = (rows[:, faces[:, k]] for k in range(3))  # (3, M) each
    u, v = b - a, c - a
    nx = u[1] * v[2] - u[2] * v[1]
    ny = u[2] * v[0] - u[0] * v[2]
    nz = u[0] * v[1] - u[1] * v[0]
    double_area = torch.sqrt(nx * nx + ny * ny + nz * nz)
    # area-weighted plane n.x + d = 0 with n = cross / |cross|, weight |cross| / 2:
    # w n n^T = cross cross^T / (2 |cross|), w d n = d' cross / (2 |cross|), d' = -cross.a
    scale = 0.5 / double_area.clamp(min=1e-30)
    d = -(nx * a[0] + ny * a[1] + nz * a[2])
    wx, wy, wz = nx * scale, ny * scale, nz * scale
    terms = torch.empty((10, faces.shape[0]), dtype=vertices.dtype, device=vertices.device)
    for row, (p, q) in enumerate(((wx, nx), (wy, ny), (wz, nz), (wx, ny), (wx, nz), (wy, nz), (wx, d), (wy, d), (wz, d))):
        torch.mul(p, q, out=terms[row])  # A (xx yy zz xy xz yz), then b
    torch.mul(double_area, 0.5, out=terms[9])  # area
    sums = torch.zeros((10, mean.shape[0]), dtype=terms.dtype, device=terms.device)
    # each face's quadric goes to its first corner's cell: a third of the scatter of
    # adding it to all three, and no measurable difference in the decimated surface
    sums.index_add_(1, cluster[faces[:, 0]], terms)
    xx, yy, zz, xy, xz, yz, bx, by, bz, area = sums
    mx, my, mz = mean.T
    # in coordinates about the mean (y = x - mean) the linear term is b + A mean
    bx = bx + xx * mx + xy * my + xz * mz
    by = by + xy * mx + yy * my + yz * mz
    bz = bz + xz * mx + yz * my + zz * mz
    lam = REGULARIZE * area + 1e-30
    y = -_solve_symmetric((xx + lam, yy + lam, zz + lam, xy, xz, yz), (bx, by, bz))
    return y.clamp(-cell, cell)  # never further than a cell from the mean


def _solve_symmetric(a, b):
    """Solve A y = b for many symmetric positive-definite 3 x 3 A, given as the rows
    (xx, yy, zz, xy, xz, yz), b as (bx, by, bz) -> y (K, 3)."""
    xx, yy, zz, xy, xz, yz = a
    c00 = yy * zz - yz * yz
    c01 = xz * yz - xy * zz
    c02 = xy * yz - xz * yy
    c11 = xx * zz - xz * xz
    c12 = xy * xz - xx * yz
    c22 = xx * yy - xy * xy
    det = xx * c00 + xy * c01 + xz * c02
    bx, by, bz = b
    y = torch.stack((c00 * bx + c01 * by + c02 * bz, c01 * bx + c11 * by + c12 * bz, c02 * bx + c12 * by + c22 * bz), 1)
    return y / det.clamp(min=1e-30)[:, None]


def _first_of_each(rows: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the first occurrence of each distinct row, in order."""
    if n < (1 << 21):  # three ids in one int64
        key = (rows[:, 0] * n + rows[:, 1]) * n + rows[:, 2]
        _, group = torch.unique(key, return_inverse=True)
    else:
        _, group = torch.unique(rows, dim=0, return_inverse=True)
    position = torch.arange(rows.shape[0], device=rows.device)
    first = torch.full((int(group.max()) + 1 if rows.shape[0] else 0,), rows.shape[0], device=rows.device)
    first.scatter_reduce_(0, group, position, reduce="amin")
    return torch.sort(first).values


def _drop_unused(vertices: torch.Tensor, faces: torch.Tensor):
    used, inverse = torch.unique(faces.reshape(-1), return_inverse=True)
    return vertices[used], inverse.reshape(-1, 3)
