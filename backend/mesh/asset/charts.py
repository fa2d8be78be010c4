"""Box-projection charts: cut the surface where its facing changes, project each piece flat.

Each face takes the one of six axis directions (+-x, +-y, +-z) closest to its normal;
connected faces of one direction form a chart, projected orthographically along it.
A face is at most 54.7 degrees from its direction, so a chart is never folded and
never stretched more than 1.73x in one direction; charts keep the mesh's winding (no
mirrored charts), which keeps the tangent frames of the normal map right-handed.
It is a handful of vectorised operations, against seconds of chart growing in xatlas
(docs/asset.md compares the two).
"""

import torch

from .cleanup import connected_components

# (u axis, v axis) per direction +x, -x, +y, -y, +z, -z, chosen so u x v is the
# direction: a face seen from outside winds counter-clockwise in UV too.
_PLANES = torch.tensor([
    [[0, 1, 0], [0, 0, 1]], [[0, -1, 0], [0, 0, 1]],
    [[0, 0, 1], [1, 0, 0]], [[0, 0, -1], [1, 0, 0]],
    [[1, 0, 0], [0, 1, 0]], [[-1, 0, 0], [0, 1, 0]],
], dtype=torch.float32)
_DIRECTIONS = torch.linalg.cross(_PLANES[:, 0], _PLANES[:, 1])
# a face joins its neighbours' direction only while it still faces it by this much
# (cos 70 degrees): fewer, larger charts without folds or extreme stretch
_RELABEL_MIN_COS = 0.34
_RELABEL_ROUNDS = 3
_SMALL_CHART = 4  # faces
_ABSORB_MIN_COS = 0.2  # 78 degrees: at most 5x stretch on these few faces


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    return torch.nn.functional.normalize(torch.linalg.cross(b - a, c - a), dim=1)


def face_adjacency(faces: torch.Tensor) -> torch.Tensor:
    """(E, 2) pairs of faces that share an edge (three or more faces on an edge chain up)."""
    m = faces.shape[0]
    edges = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    edges = torch.sort(edges, dim=1).values
    key = edges[:, 0] * (int(faces.max()) + 1) + edges[:, 1]
    order = torch.argsort(key)
    key, owner = key[order], (order // 3)
    same = key[1:] == key[:-1]
    pairs = torch.stack((owner[:-1][same], owner[1:][same]), dim=1)
    return pairs[pairs[:, 0] != pairs[:, 1]] if m else pairs


def box_charts(vertices: torch.Tensor, faces: torch.Tensor, adjacency: torch.Tensor | None = None):
    """-> (chart (M,) long in 0..K-1, direction (M,) long in 0..5)."""
    normals = face_normals(vertices, faces)
    directions = _DIRECTIONS.to(normals.device)
    facing = normals @ directions.T  # (M, 6) cosines
    label = facing.argmax(dim=1)
    adjacency = face_adjacency(faces) if adjacency is None else adjacency
    label = _majority_relabel(label, facing, adjacency)
    chart = _components(label, adjacency, faces.shape[0])
    label = _absorb_small(label, chart, facing, adjacency)
    return _components(label, adjacency, faces.shape[0]), label


def _components(label, adjacency, n_faces):
    same = label[adjacency[:, 0]] == label[adjacency[:, 1]]
    return connected_components(adjacency[same], n_faces)


def _absorb_small(label, chart, facing, adjacency):
    """Faces of charts under _SMALL_CHART faces join a larger neighbouring chart's
    direction when they face it at all (cos >= _ABSORB_MIN_COS): each small chart
    costs a seam and a gutter of its own, for a few texels of more even stretch."""
    size = torch.bincount(chart)[chart]
    both = torch.cat((adjacency, adjacency.flip(1)))
    for _ in range(2):
        small = size < _SMALL_CHART
        a, b = both[:, 0], both[:, 1]
        ok = small[a] & ~small[b] & (facing[a, label[b]] >= _ABSORB_MIN_COS)
        if not bool(ok.any()):
            break
        label = label.clone()
        label[a[ok]] = label[b[ok]]
        size = size.clone()
        size[a[ok]] = _SMALL_CHART  # absorbed faces count as large for the next round
    return label


def _majority_relabel(label, facing, adjacency):
    """A face whose neighbours mostly took another direction takes it too, if it faces it.

    Removes the one-face islands and saw-tooth borders that nearest-direction labels
    leave where the surface turns, each of which would cost a chart and its gutter.
    """
    m = label.shape[0]
    both = torch.cat((adjacency, adjacency.flip(1)))
    for _ in range(_RELABEL_ROUNDS):
        votes = torch.zeros((m, 6), device=label.device)
        one = torch.ones(both.shape[0], device=label.device)
        votes.index_put_((both[:, 0], label[both[:, 1]]), one, accumulate=True)
        own = votes.gather(1, label[:, None])[:, 0]
        best_votes, best = votes.max(dim=1)
        allowed = facing.gather(1, best[:, None])[:, 0] >= _RELABEL_MIN_COS
        change = (best_votes >= 2) & (best_votes > own) & allowed
        if not bool(change.any()):
            break
        label = torch.where(change, best, label)
    return label


def project_charts(vertices: torch.Tensor, faces: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Per-corner 2-D coordinates (M, 3, 2) in world units: each face on its direction's plane."""
    planes = _PLANES.to(vertices.device)[direction]  # (M, 2, 3)
    corners = vertices[faces]  # (M, 3, 3)
    return torch.einsum("mcx,mux->mcu", corners, planes)
