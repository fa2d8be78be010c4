"""The marching-cubes lookup table that diffusers' ShapERenderer keeps as buffers.

A converted Shap-E checkpoint carries the table in shap_e_renderer's weights
(`mesh_decoder.cases` (256, 5, 3) int64 and `mesh_decoder.masks` (256, 5) bool); a
freshly built renderer holds zeros, which decode every field to an empty mesh. The
test-model maker therefore writes a table derived here.

Conventions are those of diffusers' MeshDecoder (and Shap-E's): a corner is inside
when the field is > 0; corner c of a cell sits at offset (c & 1, c >> 1 & 1, c >> 2 & 1);
edge 4 * axis + k runs along `axis`, k's low bit giving the offset on the lower of the
two other axes and its high bit the offset on the higher one. Triangles are wound
counter-clockwise seen from outside (right-hand normals point out of the shape).

Derivation: on each cube face, every run of inside corners is cut off by one segment
(a face with two diagonal inside corners cuts each off on its own; the neighbouring
cell sees the same face values and makes the same choice, so meshes have no cracks).
The segments chain into closed loops, each fanned into triangles none of which lies flat in a cube face.
"""

from functools import lru_cache

import numpy as np

MAX_TRIANGLES = 5


def corner_offset(corner: int) -> tuple[int, int, int]:
    return (corner & 1, corner >> 1 & 1, corner >> 2 & 1)


def edge_id(a: int, b: int) -> int:
    """The edge joining corners a and b (which differ in exactly one axis)."""
    axis = (a ^ b).bit_length() - 1
    low, high = [other for other in range(3) if other != axis]
    offset = corner_offset(a)
    return 4 * axis + offset[low] + 2 * offset[high]


def _edge_faces(edge: int) -> set[tuple[int, int]]:
    """The two cube faces, as (axis, side), that an edge lies on."""
    axis, k = divmod(edge, 4)
    low, high = [other for other in range(3) if other != axis]
    return {(low, k & 1), (high, k >> 1)}


def _fan(loop: list[int]) -> list[tuple[int, int, int]]:
    """Fan triangles over a loop, started where no triangle lies flat in a cube face
    (such a triangle would overlap the neighbouring cell's surface)."""
    for start in range(len(loop)):
        ring = loop[start:] + loop[:start]
        fan = [(ring[0], ring[i], ring[i + 1]) for i in range(1, len(ring) - 1)]
        if all(not set.intersection(*(_edge_faces(e) for e in t)) for t in fan):
            return fan
    raise AssertionError(f"no clean fan for loop {loop}")


def _faces_outside_ccw() -> list[list[int]]:
    """Each face's corners in counter-clockwise order seen from outside the cube."""
    faces = []
    for axis in range(3):
        u, v = (axis + 1) % 3, (axis + 2) % 3  # (u, v, axis) is a right-handed frame
        square = [(0, 0), (1, 0), (1, 1), (0, 1)]  # counter-clockwise about +axis
        for side in (0, 1):
            ring = [side << axis | a << u | b << v for a, b in square]
            faces.append(ring if side else ring[::-1])  # the low face is seen from -axis
    return faces


def _loops(inside: list[bool]) -> list[list[int]]:
    """Closed loops of crossed edges, each directed the same way around its inside."""
    successor = {}
    for ring in _faces_outside_ccw():
        crossings = []  # (edge, True when the walk goes from outside to inside)
        for i in range(4):
            a, b = ring[i], ring[(i + 1) % 4]
            if inside[a] != inside[b]:
                crossings.append((edge_id(a, b), inside[b]))
        for i, (edge, entering) in enumerate(crossings):
            if entering:  # the inside run ends at the next crossing of the walk
                successor[edge] = crossings[(i + 1) % len(crossings)][0]
    loops = []
    while successor:
        start = min(successor)
        loop, edge = [], start
        while True:
            loop.append(edge)
            edge = successor.pop(edge)
            if edge == start:
                break
        loops.append(loop)
    return loops


@lru_cache(maxsize=1)
def lookup_table() -> tuple[np.ndarray, np.ndarray]:
    """(cases (256, 5, 3) int64 edge ids, masks (256, 5) bool: which rows are triangles)."""
    cases = np.zeros((256, MAX_TRIANGLES, 3), dtype=np.int64)
    masks = np.zeros((256, MAX_TRIANGLES), dtype=bool)
    for pattern in range(256):
        inside = [bool(pattern >> c & 1) for c in range(8)]
        triangles = []
        for loop in _loops(inside):
            # Each segment runs from where a face walk enters the inside to where it
            # leaves; chained, a loop turns counter-clockwise seen from outside the
            # shape, so the fan's right-hand normals point outward (tests check it).
            triangles += _fan(loop)
        if len(triangles) > MAX_TRIANGLES:
            raise AssertionError(f"pattern {pattern} needs {len(triangles)} triangles")
        for row, triangle in enumerate(triangles):
            cases[pattern, row] = triangle
            masks[pattern, row] = True
    return cases, masks
