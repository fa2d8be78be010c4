"""LoFTR feature matches between the nearby views, as One-2-3-45's elevation estimate
takes them (elevation_estimate/utils/elev_est_api.py get_feature_matching).

The matcher is kornia's LoFTR, which gives the same matches as the copy One-2-3-45
vendors on the same weights (tests/test_zero123_loftr.py); the weights are
indoor_ds_new.ckpt, read with torch.load(weights_only=True) and checked tensor by tensor.
Its widths are read from the tensors' shapes, so a small random checkpoint of the same
layout works in tests. One-2-3-45 reads each view back from its PNG as grey with OpenCV
and resizes it to 480 x 480 (bilinear); grey() and resize_bilinear() restate those in
OpenCV's fixed-point arithmetic (equal to opencv-python-headless 4.11 on x86, checked
with the numbers in tests/data/zero123_ref).
"""

import pickle
import re
from pathlib import Path

import numpy as np
import torch

from ..bridge.errors import CheckpointError
from .folders import check_loftr_file, loftr_hint

MATCH_SIZE = 480
PREFIX = "matcher."
_RESIZE_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS


def loftr_config(initial_dim: int, block_dims, coarse_layers: int = 8) -> dict:
    """kornia's LoFTR configuration for these widths, with the positional encoding that
    indoor_ds_new was trained with (temp_bug_fix True, as One-2-3-45 sets it)."""
    from kornia.feature.loftr.loftr import default_cfg

    config = {key: (dict(value) if isinstance(value, dict) else value) for key, value in default_cfg.items()}
    config["resnetfpn"] = {"initial_dim": int(initial_dim), "block_dims": [int(d) for d in block_dims]}
    coarse, fine = int(block_dims[2]), int(block_dims[0])
    config["coarse"].update(d_model=coarse, d_ffn=coarse, layer_names=["self", "cross"] * (coarse_layers // 2),
                            temp_bug_fix=True)
    config["fine"].update(d_model=fine, d_ffn=fine)
    return config


def _read_state(path: Path) -> dict:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} could not be read as LoFTR weights (only plain tensors are loaded, never "
                              f"pickled objects): {reason}. {loftr_hint()}") from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no LoFTR state_dict of tensors; {loftr_hint()}")
    return {(k[len(PREFIX):] if k.startswith(PREFIX) else k): v for k, v in state.items()}


def _widths(state: dict, path: Path) -> tuple[int, list[int], int]:
    try:
        initial = state["backbone.conv1.weight"].shape[0]
        blocks = [state[f"backbone.layer{i}.0.conv1.weight"].shape[0] for i in (1, 2, 3)]
    except KeyError as exc:
        raise CheckpointError(f"{path} is not a LoFTR checkpoint: it lacks {exc.args[0]}; {loftr_hint()}") from None
    layers = {int(m.group(1)) for k in state if (m := re.match(r"loftr_coarse\.layers\.(\d+)\.", k))}
    return initial, blocks, len(layers)


def load_loftr(path, device: torch.device):
    """kornia's LoFTR with the weights in `path`, in evaluation mode on `device`."""
    from kornia.feature import LoFTR

    path = check_loftr_file(path)
    state = _read_state(path)
    initial, blocks, layers = _widths(state, path)
    matcher = LoFTR(pretrained=None, config=loftr_config(initial, blocks, layers))
    expected = {k: tuple(v.shape) for k, v in matcher.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    problems = [f"missing {k}" for k in sorted(set(expected) - set(found))]
    problems += [f"unexpected {k}" for k in sorted(set(found) - set(expected))]
    problems += [f"{k} is {found[k]}, expected {expected[k]}" for k in sorted(set(found) & set(expected))
                 if found[k] != expected[k]]
    if problems:
        raise CheckpointError(f"{path} does not match LoFTR ({len(problems)} problems): {'; '.join(problems[:5])}"
                              + (" ..." if len(problems) > 5 else ""))
    matcher.load_state_dict(state)
    return matcher.eval().to(device)


def grey(picture: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> grey uint8 as OpenCV's imread(..., IMREAD_GRAYSCALE) gives it
    for an RGB PNG: libpng's conversion, 15-bit weights, truncated."""
    rgb = picture.astype(np.int64)
    return ((rgb[..., 0] * 9797 + rgb[..., 1] * 19234 + rgb[..., 2] * 3737) >> 15).astype(np.uint8)


def _weights(fraction: np.ndarray) -> np.ndarray:
    first = np.rint((1.0 - fraction) * (1 << _RESIZE_BITS)).astype(np.int64)
    return np.stack([first, (1 << _RESIZE_BITS) - first], axis=-1)


def _positions(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Source position of each output pixel centre: (floor, fraction)."""
    f = (np.arange(dst) + 0.5) * (src / dst) - 0.5
    first = np.floor(f).astype(np.int64)
    return first, f - first


def resize_bilinear(image: np.ndarray, size: int = MATCH_SIZE) -> np.ndarray:
    """uint8 (H, W) -> (size, size) as x86 OpenCV's cv2.resize(image, (size, size))
    (INTER_LINEAR) computes it: 11-bit weights; across, positions outside the picture
    are clamped with their weights; down, only the rows are, and the two rows are
    mixed with 16-bit high multiplies (its SIMD path), rounding as it does."""
    h, w = image.shape
    left, fx = _positions(w, size)
    fx[left < 0], left[left < 0] = 0.0, 0
    edge = left >= w - 1
    fx[edge], left[edge] = 0.0, w - 1
    wx = _weights(fx)
    src = image.astype(np.int64)
    rows = src[:, left] * wx[:, 0] + src[:, np.minimum(left + 1, w - 1)] * wx[:, 1]  # (h, size), scaled 2**11
    top, fy = _positions(h, size)
    wy = _weights(fy)
    upper, lower = rows[np.clip(top, 0, h - 1)], rows[np.clip(top + 1, 0, h - 1)]
    value = ((wy[:, :1] * (upper >> 4)) >> 16) + ((wy[:, 1:] * (lower >> 4)) >> 16)
    return ((value + 2) >> 2).astype(np.uint8)


def matcher_input(picture: np.ndarray, device) -> torch.Tensor:
    """A view as LoFTR sees it: grey, 480 x 480, float in [0, 1], (1, 1, 480, 480)."""
    return torch.from_numpy(resize_bilinear(grey(picture))).float()[None, None].to(device) / 255.0


@torch.no_grad()
def match_pair(matcher, image0: torch.Tensor, image1: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points0, points1, confidence) for one pair of matcher inputs, points in the 480 frame."""
    out = matcher({"image0": image0, "image1": image1})
    return (out["keypoints0"].float().cpu().numpy(), out["keypoints1"].float().cpu().numpy(),
            out["confidence"].float().cpu().numpy())
