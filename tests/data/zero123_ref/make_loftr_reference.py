"""Reference numbers for tests/test_zero123_loftr.py: One-2-3-45's vendored LoFTR
(elevation_estimate/loftr, temp_bug_fix True) on the project's tiny random LoFTR
checkpoint, and OpenCV's grey read and bilinear resize that get_feature_matching uses.

Same scratch environment as make_reference.py (needs ONE2345, kornia 0.9 for the
vendored code's kornia.utils.grid stand-in, yacs, einops, opencv-python-headless):

    PYTHONPATH=$SCRATCH_SITE:<worktree> .venv/bin/python make_loftr_reference.py OUT_DIR
"""

import copy
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch


def matcher_images():
    """The pair the test builds the same way: smooth noise, and it shifted by (16, 24)."""
    base = torch.rand(1, 1, 60, 60, generator=torch.Generator().manual_seed(0))
    image0 = torch.nn.functional.interpolate(base, size=(480, 480), mode="bilinear")
    return image0, torch.roll(image0, (16, 24), (2, 3))


def main(out_dir: str) -> None:
    import cv2
    import kornia.utils

    from backend.test_models.zero123 import _LOFTR, make_test_loftr

    grid = types.ModuleType("kornia.utils.grid")
    grid.create_meshgrid = kornia.utils.create_meshgrid
    sys.modules["kornia.utils.grid"] = grid
    sys.path.insert(0, os.environ["ONE2345"])
    from elevation_estimate.loftr import LoFTR, default_cfg

    work = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(work / "p.png"), picture[..., ::-1])
    grey = cv2.imread(str(work / "p.png"), cv2.IMREAD_GRAYSCALE)
    small = rng.integers(0, 256, (64, 64), dtype=np.uint8)

    path = make_test_loftr(work / "loftr.ckpt", "tiny", 0)
    config = copy.deepcopy(default_cfg)
    config["coarse"]["temp_bug_fix"] = True
    initial, blocks = _LOFTR["tiny"]
    config["resnetfpn"] = {"initial_dim": initial, "block_dims": blocks}
    config["coarse"]["d_model"] = config["coarse"]["d_ffn"] = blocks[2]
    config["fine"]["d_model"] = config["fine"]["d_ffn"] = blocks[0]
    matcher = LoFTR(config)
    matcher.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    matcher.eval()
    image0, image1 = matcher_images()
    batch = {"image0": image0, "image1": image1}
    with torch.no_grad():
        matcher(batch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "loftr_reference.npz", picture=picture, grey=grey, small=small,
                        small_resized=cv2.resize(small, (120, 120)), grey_resized=cv2.resize(grey, (120, 120)),
                        points0=batch["mkpts0_f"].numpy(), points1=batch["mkpts1_f"].numpy(),
                        confidence=batch["mconf"].numpy())


if __name__ == "__main__":
    main(sys.argv[1])
