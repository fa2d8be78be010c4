"""Marching cubes in torch, for a density grid that already lives on the GPU.

PyMCubes does the CPU case; this one keeps the grid on the device and only copies the
mesh back. It puts one vertex on every grid edge whose ends lie on both sides of the
level, interpolated linearly between them, so its vertices are exactly PyMCubes'
(in another order); only the triangulation inside a cube may differ.

The triangle table is derived here rather than typed in: for each of the 256 corner
patterns, every cube face contributes the segments that cut its inside corners off
(an ambiguous face separates its two inside corners, a choice both cubes sharing the
face make alike, so the surface has no cracks); the segments close into loops, and
each loop is fanned into triangles wound outward.
"""

from functools import lru_cache

import torch

# corner c sits at offset (c & 1, c >> 1 & 1, c >> 2 & 1) within its cube
CORNERS = [(c & 1, c >> 1 & 1, c >> 2 & 1) for c in range(8)]
# edge: (axis, corner at its lower end); its other end is that corner with bit `axis` set
EDGES = [(axis, c) for axis in range(3) for c in range(8) if not c >> axis & 1]
_EDGE_OF = {frozenset((c, c | 1 << axis)): e for e, (axis, c) in enumerate(EDGES)}


def _face_cycles():
    """Each face's 4 corners in counter-clockwise order seen from outside the cube."""
    cycles = []
    for axis in range(3):
        u, v = (axis + 1) % 3, (axis + 2) % 3  # (u, v, axis) is right-handed
        ring = [(0, 0), (1, 0), (1, 1), (0, 1)]  # counter-clockwise about +axis
        for side in (0, 1):
            corners = [(side << axis) | (a << u) | (b << v) for a, b in ring]
            cycles.append(corners if side == 1 else corners[::-1])
    return cycles


@lru_cache(maxsize=1)
def triangle_table():
    """(256, 15) local edge ids of up to 5 triangles per corner pattern, -1 padded."""
    cycles = _face_cycles()
    table = []
    for pattern in range(256):
        inside = [bool(pattern >> c & 1) for c in range(8)]
        following = {}
        for cycle in cycles:
            # walk the face; a run of inside corners starts after an entering edge and
            # ends before a leaving edge; its segment goes from the leaving edge back
            # to the entering one, so the inside corner(s) stay on one side
            crossings = []
            for i in range(4):
                a, b = cycle[i], cycle[(i + 1) % 4]
                if inside[a] != inside[b]:
                    crossings.append((_EDGE_OF[frozenset((a, b))], inside[b]))
            for i, (edge, entering) in enumerate(crossings):
                if entering:
                    leaving_edge = crossings[(i + 1) % len(crossings)][0]
                    following[leaving_edge] = edge
        triangles = []
        while following:
            start = next(iter(following))
            loop = [start]
            while following[loop[-1]] != start:
                loop.append(following.pop(loop[-1]))
            following.pop(loop[-1])
            # the loops run clockwise seen from outside: fan them the other way round
            for i in range(1, len(loop) - 1):
                triangles += [loop[0], loop[i + 1], loop[i]]
        table.append(triangles + [-1] * (15 - len(triangles)))
    return table


def marching_cubes_torch(volume: torch.Tensor, level: float):
    """(X, Y, Z) grid -> vertices (N, 3) float32 in grid-index units, faces (M, 3) int64."""
    device = volume.device
    inside = volume > level
    nx, ny, nz = volume.shape
    cell_shape = (nx - 1, ny - 1, nz - 1)
    pattern = torch.zeros(cell_shape, dtype=torch.uint8, device=device)
    for c, (dx, dy, dz) in enumerate(CORNERS):
        pattern |= inside[dx : dx + nx - 1, dy : dy + ny - 1, dz : dz + nz - 1].to(torch.uint8) << c
    cells = ((pattern > 0) & (pattern < 255)).nonzero()

    # one vertex per crossed edge, numbered axis by axis in row-major order, so that
    # their global ids come out sorted and searchsorted can find them
    strides = torch.tensor([ny * nz, nz, 1], device=device)
    edge_ids, vertices = [], []
    for axis in range(3):
        upper = [slice(None)] * 3
        lower = [slice(None)] * 3
        lower[axis] = slice(0, volume.shape[axis] - 1)
        upper[axis] = slice(1, None)
        start = inside[tuple(lower)] != inside[tuple(upper)]
        at = start.nonzero()
        v0 = volume[at[:, 0], at[:, 1], at[:, 2]]
        end = at.clone()
        end[:, axis] += 1
        v1 = volume[end[:, 0], end[:, 1], end[:, 2]]
        position = at.float()
        position[:, axis] += (level - v0) / (v1 - v0)
        edge_ids.append(axis * nx * ny * nz + (at * strides).sum(1))
        vertices.append(position)
    edge_ids = torch.cat(edge_ids)
    vertices = torch.cat(vertices)

    # a triangle corner names a local edge; its global id is the cell's linear index
    # plus a per-edge offset (kept small: int64 only for one id per corner)
    table = torch.tensor(triangle_table(), device=device)
    edge_offset = torch.tensor(
        [axis * nx * ny * nz + sum(o * st for o, st in zip(CORNERS[c], (ny * nz, nz, 1))) for axis, c in EDGES],
        device=device,
    )
    local = table[pattern[cells[:, 0], cells[:, 1], cells[:, 2]].long()]  # (K, 15)
    used = local >= 0
    cell_linear = (cells * strides).sum(1)
    wanted = (cell_linear[:, None] + edge_offset[local.clamp(min=0)])[used]
    faces = torch.searchsorted(edge_ids, wanted).view(-1, 3)
    return vertices, faces
