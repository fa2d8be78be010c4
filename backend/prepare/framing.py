"""Framing the object as the reference TripoSR run script does, so the model sees the same pixels.

Crop to the visible pixels, pad to a centred square that the object fills by the
foreground ratio, blend onto 50 % grey. See docs/backend.md ("Input preparation").
"""

import numpy as np

from ..bridge.errors import InputImageError
from .background import BackgroundRemover
from .images import has_transparency, open_image, to_rgba8

GREY = 0.5


def frame_foreground(rgba: np.ndarray, ratio: float) -> np.ndarray:
    """Crop to the visible pixels, pad to a centred square, then pad so it fills `ratio`."""
    rows, cols = np.nonzero(rgba[..., 3] > 0)
    if rows.size == 0:
        raise InputImageError("the image is fully transparent: there is no object to reconstruct")
    # The reference crop stops one short of the last row and column; keep that.
    crop = rgba[rows.min() : rows.max(), cols.min() : cols.max()]
    if crop.size == 0:
        crop = rgba[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    square = _pad_centred(crop, max(crop.shape[:2]))
    return _pad_centred(square, int(square.shape[0] / ratio))


def _pad_centred(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = (size - h) // 2, (size - w) // 2
    return np.pad(image, ((top, size - h - top), (left, size - w - left), (0, 0)))


def composite_on_grey(rgba: np.ndarray) -> np.ndarray:
    """Blend onto 50 % grey in float and truncate back to uint8, as the reference does."""
    image = rgba.astype(np.float32) / 255.0
    alpha = image[..., 3:4]
    rgb = image[..., :3] * alpha + (1.0 - alpha) * GREY
    return (rgb * 255.0).astype(np.uint8)


def prepare_image(source, foreground_ratio: float, remove_background: bool, remover: BackgroundRemover | None = None) -> np.ndarray:
    """Any supported input -> the (H, W, 3) uint8 image the model sees."""
    rgba = to_rgba8(open_image(source))
    if not has_transparency(rgba):
        if remove_background:
            rgba = (remover or BackgroundRemover())(rgba)
            if not (rgba[..., 3] > 0).any():
                raise InputImageError(
                    "background removal found no object in the image; try an image with an "
                    "alpha channel or turn background removal off"
                )
    elif not (rgba[..., 3] > 0).any():
        raise InputImageError("the image is fully transparent: there is no object to reconstruct")
    return composite_on_grey(frame_foreground(rgba, foreground_ratio))
