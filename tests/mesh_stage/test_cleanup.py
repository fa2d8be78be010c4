import torch
from shapes import as_torch

from backend.mesh.asset.cleanup import compact, connected_components, floater_faces, taubin_smooth, vertex_components


def test_components_of_a_small_graph():
    edges = torch.tensor([[0, 1], [1, 2], [3, 4], [6, 5]])
    labels = connected_components(edges, 7)
    assert labels[0] == labels[1] == labels[2]
    assert labels[3] == labels[4] and labels[5] == labels[6]
    assert len(set(labels.tolist())) == 3


def test_components_of_a_long_chain():
    # the worst case for plain label propagation: pointer jumping keeps it short
    n = 100_000
    edges = torch.stack((torch.arange(n - 1), torch.arange(1, n)), dim=1).flip(0)
    assert int(connected_components(edges, n).max()) == 0


def test_specks_are_dropped_and_real_parts_kept(figure):
    v, f = as_torch(figure)
    parts = vertex_components(f, v.shape[0])[f[:, 0]]
    assert len(parts.unique()) == 5  # body, ring handle, three specks
    keep = floater_faces(v, f)
    kept_parts = parts[keep].unique()
    assert len(kept_parts) == 2  # the ring (about 6 % of the body's area) stays
    nv, nf, old = compact(v, f, keep)
    assert nf.shape[0] == int(keep.sum()) and int(nf.max()) == nv.shape[0] - 1
    assert torch.equal(nv, v[old])


def _volume(v, f):
    p = v[f].double()
    return float(torch.linalg.det(p).sum() / 6)


def test_taubin_keeps_the_volume_and_removes_roughness(sphere):
    v, f = as_torch(sphere)
    g = torch.Generator().manual_seed(0)
    noisy = v + torch.randn(v.shape, generator=g) * 0.003  # terrace-sized bumps
    smooth = taubin_smooth(noisy, f, 10)
    laplace = taubin_smooth(noisy, f, 10, lam=0.5, mu=0.0)
    v0 = _volume(v, f)
    assert abs(_volume(smooth, f) / v0 - 1) < 0.01
    assert _volume(laplace, f) / v0 < 0.97  # plain Laplacian shrinks: what Taubin avoids
    rough = lambda x: float(x.norm(dim=1).std())  # noqa: E731  radius spread
    assert rough(smooth) < 0.5 * rough(noisy)


def test_no_iterations_is_identity(sphere):
    v, f = as_torch(sphere)
    assert taubin_smooth(v, f, 0) is v
