"""LoFTR for the elevation estimate: kornia's matcher against One-2-3-45's vendored copy on
the same tiny random checkpoint, OpenCV's grey read and resize as restated, the checkpoint
checks. Reference numbers: tests/data/zero123_ref/loftr_reference.npz
(make_loftr_reference.py, One-2-3-45 commit 9d5e3a0, opencv-python-headless 4.11.0.86)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from backend.bridge.errors import CheckpointError, ModelNotFoundError
from backend.test_models.zero123 import make_test_loftr
from backend.zero123 import loftr

REFERENCE = np.load(Path(__file__).parent / "data" / "zero123_ref" / "loftr_reference.npz")


def test_grey_read_is_opencvs_exactly():
    assert np.array_equal(loftr.grey(REFERENCE["picture"]), REFERENCE["grey"])


@pytest.mark.parametrize("source, resized", [("small", "small_resized"), ("grey", "grey_resized")])
def test_bilinear_resize_is_opencvs_exactly(source, resized):
    assert np.array_equal(loftr.resize_bilinear(REFERENCE[source], 120), REFERENCE[resized])


def test_kornias_matches_equal_the_vendored_loftrs(tmp_path):
    """Tolerance: 1e-3 pixels and 1e-4 in confidence (float32 noise of two operation orders)."""
    matcher = loftr.load_loftr(make_test_loftr(tmp_path / "loftr.ckpt", "tiny", 0), torch.device("cpu"))
    base = torch.rand(1, 1, 60, 60, generator=torch.Generator().manual_seed(0))
    image0 = torch.nn.functional.interpolate(base, size=(480, 480), mode="bilinear")
    points0, points1, confidence = loftr.match_pair(matcher, image0, torch.roll(image0, (16, 24), (2, 3)))
    assert len(REFERENCE["confidence"]) >= 3 and len(confidence) == len(REFERENCE["confidence"])
    np.testing.assert_allclose(points0, REFERENCE["points0"], atol=1e-3)
    np.testing.assert_allclose(points1, REFERENCE["points1"], atol=1e-3)
    np.testing.assert_allclose(confidence, REFERENCE["confidence"], atol=1e-4)


def test_checkpoint_messages(tmp_path):
    with pytest.raises(ModelNotFoundError, match="indoor_ds_new.ckpt"):
        loftr.load_loftr(tmp_path / "missing.ckpt", torch.device("cpu"))
    (tmp_path / "pickled.ckpt").write_bytes(b"")
    torch.save({"state_dict": {"x": torch.zeros(1)}, "object": Path("/")}, tmp_path / "pickled.ckpt")
    with pytest.raises(CheckpointError, match="never pickled objects"):
        loftr.load_loftr(tmp_path / "pickled.ckpt", torch.device("cpu"))
    good = torch.load(make_test_loftr(tmp_path / "good.ckpt", "tiny", 0), weights_only=True)
    good["state_dict"].pop("matcher.loftr_fine.layers.0.merge.weight")
    torch.save(good, tmp_path / "broken.ckpt")
    with pytest.raises(CheckpointError, match="missing loftr_fine.layers.0.merge.weight"):
        loftr.load_loftr(tmp_path / "broken.ckpt", torch.device("cpu"))
    torch.save({"state_dict": {"something": torch.zeros(2)}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a LoFTR checkpoint"):
        loftr.load_loftr(tmp_path / "other.ckpt", torch.device("cpu"))
