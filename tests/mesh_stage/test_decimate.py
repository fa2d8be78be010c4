import numpy as np
import pytest
import torch

from backend.mesh.asset.decimate import cluster_vertices
from backend.mesh.asset.decimate import decimate as decimate_torch


def decimate(v, f, target):
    dv, df = decimate_torch(torch.from_numpy(v), torch.from_numpy(f).long(), target)
    return dv.numpy(), df.int().numpy()


@pytest.mark.parametrize("target", [4, 100, 1000, 5000])
def test_face_count_at_most_target(sphere, target):
    v, f = sphere
    dv, df = decimate(v, f, target)
    assert len(df) <= target
    assert dv.dtype == np.float32
    assert df.min() >= 0 and df.max() == len(dv) - 1  # no unused vertices
    assert np.all((df[:, 0] != df[:, 1]) & (df[:, 1] != df[:, 2]) & (df[:, 0] != df[:, 2]))


def test_shape_is_kept(sphere):
    v, f = sphere
    dv, _ = decimate(v, f, 1000)
    radius = np.linalg.norm(dv, axis=1)
    assert np.abs(radius - 0.4).max() < 0.01  # 1.2 % of the bounding box diagonal


def test_small_meshes_pass_through(sphere):
    v, f = sphere
    dv, df = decimate(v, f, len(f))
    assert len(df) == len(f)


def test_bad_target():
    with pytest.raises(ValueError):
        decimate(np.zeros((3, 3)), np.array([[0, 1, 2]]), 0)


def test_clustering_first_for_large_reductions(sphere):
    v, f = sphere  # ~18k faces: 100 faces is far more than 5x below
    dv, df = decimate(v, f, 100)
    assert len(df) <= 100
    assert np.abs(np.linalg.norm(dv, axis=1) - 0.4).max() < 0.03


def test_cluster_vertices_merges_a_cell():
    v = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    f = torch.tensor([[0, 2, 3], [1, 2, 3], [2, 4, 3]])
    cv, cf = cluster_vertices(v, f, cell=0.5)
    assert cv.shape[0] == 4  # vertices 0 and 1 share a cell
    assert cf.shape[0] == 2  # faces 0 and 1 became the same face: one is kept
    assert torch.allclose(cv[0], torch.tensor([0.05, 0, 0]))
