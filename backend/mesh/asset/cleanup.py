"""Clean-up of the raw marching-cubes surface: floating parts and terracing.

Torch only, so it runs where the surface was made (CPU, CUDA or MPS).

Floaters: marching cubes turns every blob of density above the level into its own
closed piece, and TripoSR leaves small ones around the object. A connected part is
dropped when its surface area is below FLOATER_AREA_RATIO of the largest part's. Area
rather than triangle or vertex count, because it does not change with the grid
resolution; relative to the largest part rather than absolute, because objects come
in every size. 0.5 % keeps genuine separate pieces (a hat, a sword, a chair's loose
cushion are percents of the body) and drops specks, whose area is well under 0.1 %.

Smoothing: Taubin's lambda|mu scheme (a shrinking Laplacian step, then an inflating
one) removes the grid-scale terraces while leaving the overall shape, and the enclosed
volume, almost unchanged; plain Laplacian smoothing shrinks the object a little on
every pass.
"""

import torch

FLOATER_AREA_RATIO = 0.005
# Taubin's pass-band k = 1/lambda + 1/mu = 0.1: frequencies above it (terraces a
# voxel or two wide) are damped, those below (the shape) pass almost untouched.
TAUBIN_LAMBDA = 0.5
TAUBIN_MU = -0.53


def connected_components(edges: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """Label (0..K-1) of the connected part of each node of the graph `edges` (E, 2).

    Parallel label propagation with pointer jumping (each root hooks onto the
    smallest label across its edges, then every label follows its chain to the
    root): a few dozen vectorised passes even for a million faces, and no Python
    loop over nodes, so the same code runs on a GPU.
    """
    u, v = edges[:, 0], edges[:, 1]
    labels = torch.arange(n_nodes, device=edges.device)
    while True:
        lu, lv = labels[u], labels[v]
        differ = lu != lv
        if not bool(differ.any()):
            break
        lu, lv = lu[differ], lv[differ]
        low = torch.minimum(lu, lv)
        labels.scatter_reduce_(0, torch.cat((lu, lv)), torch.cat((low, low)), reduce="amin")
        while True:  # pointer jumping: every node straight to its root
            jumped = labels[labels]
            if torch.equal(jumped, labels):
                break
            labels = jumped
    return torch.unique(labels, return_inverse=True)[1]


def vertex_components(faces: torch.Tensor, n_vertices: int) -> torch.Tensor:
    """Label of the connected part of each vertex, parts joined through triangle edges."""
    return connected_components(faces[:, [0, 1, 1, 2]].reshape(-1, 2), n_vertices)


def face_areas(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    return 0.5 * torch.linalg.cross(b - a, c - a).norm(dim=1)


def floater_faces(vertices: torch.Tensor, faces: torch.Tensor, ratio: float = FLOATER_AREA_RATIO) -> torch.Tensor:
    """Boolean mask of the faces to keep: parts with area >= ratio x the largest part's."""
    labels = vertex_components(faces, vertices.shape[0])[faces[:, 0]]
    area = torch.zeros(int(labels.max()) + 1, dtype=vertices.dtype, device=vertices.device)
    area.index_add_(0, labels, face_areas(vertices, faces))
    return area[labels] >= ratio * area.max()


def compact(vertices: torch.Tensor, faces: torch.Tensor, keep: torch.Tensor):
    """Keep the faces marked in `keep` and only the vertices they use.

    Returns (vertices, faces, old_index): old_index[i] is the input index of new vertex i.
    """
    faces = faces[keep]
    used = torch.zeros(vertices.shape[0], dtype=torch.bool, device=vertices.device)
    used[faces.reshape(-1)] = True
    old_index = used.nonzero()[:, 0]
    new_index = torch.full((vertices.shape[0],), -1, dtype=faces.dtype, device=faces.device)
    new_index[old_index] = torch.arange(old_index.shape[0], dtype=faces.dtype, device=faces.device)
    return vertices[old_index], new_index[faces], old_index


def taubin_smooth(vertices: torch.Tensor, faces: torch.Tensor, iterations: int,
                  lam: float = TAUBIN_LAMBDA, mu: float = TAUBIN_MU, check=None) -> torch.Tensor:
    """`iterations` lambda|mu pairs of the uniform (umbrella) Laplacian.

    The neighbour average is taken over the face corners around each vertex, so an
    edge between two faces counts twice for each end, which weights every interior
    neighbour alike without building an edge list. `check` (optional) is called after
    each pass, to report progress or stop.
    """
    if iterations <= 0:
        return vertices
    corners = faces.reshape(-1)
    degree = torch.zeros(vertices.shape[0], dtype=vertices.dtype, device=vertices.device)
    degree.index_add_(0, corners, torch.full_like(corners, 2, dtype=vertices.dtype))
    degree = degree.clamp(min=1).unsqueeze(1)
    v = vertices.clone()

    def step(v, factor):
        corner_pos = v[faces]  # (M, 3, 3)
        others = corner_pos.sum(1, keepdim=True) - corner_pos  # sum of the other two corners
        total = torch.zeros_like(v).index_add_(0, corners, others.reshape(-1, 3))
        return v + factor * (total / degree - v)

    for i in range(iterations):
        v = step(step(v, lam), mu)
        if check is not None:
            check((i + 1) / iterations)
    return v
