"""Framing the object as the reference TripoSR run script does, so the model sees the same pixels.

Crop to the visible pixels, pad to a centred square that the object fills by the
foreground ratio, blend onto 50 % grey. See docs/backend.md ("Input preparation").
"""

import numpy as np
from PIL import Image

from ..bridge.errors import InputImageError
from .background import BackgroundRemover
from .images import has_transparency, open_image, to_rgba8

GREY = 0.5
# The framed square's largest side. The encoder resizes it to 512 x 512 anyway, so a
# larger square only costs memory: a 12000 x 300 banner would need gigabytes, a tiny
# foreground ratio hundreds of them. Squares up to this size are framed exactly as the
# reference does; a larger one is framed from a scaled-down crop.
MAX_FRAMED_SIDE = 2048
SMALL_OBJECT_SIDE = 32  # pixels: below this the model sees mostly a blur; warn


def visible_crop(rgba: np.ndarray) -> np.ndarray:
    """The visible pixels' bounding box (a view, no copy)."""
    visible = rgba[..., 3] > 0
    rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
    if rows.size == 0:
        raise InputImageError("the image is fully transparent: there is no object to reconstruct")
    # The reference crop stops one short of the last row and column; keep that.
    crop = rgba[rows[0] : rows[-1], cols[0] : cols[-1]]
    if crop.size == 0:
        crop = rgba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return crop


def frame_foreground(rgba: np.ndarray, ratio: float) -> np.ndarray:
    """Crop to the visible pixels, pad to a centred square, then pad so it fills `ratio`.

    Never allocates a square larger than MAX_FRAMED_SIDE on a side.
    """
    crop = visible_crop(rgba)
    side = max(crop.shape[:2])
    if int(side / ratio) > MAX_FRAMED_SIDE:
        scale = MAX_FRAMED_SIDE / (side / ratio)
        height, width = (max(1, int(n * scale)) for n in crop.shape[:2])
        crop = np.asarray(Image.fromarray(crop, "RGBA").resize((width, height), Image.Resampling.BOX))
    square = _pad_centred(crop, max(crop.shape[:2]))
    return _pad_centred(square, min(MAX_FRAMED_SIDE, int(square.shape[0] / ratio)))


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


def prepare_image(source, foreground_ratio: float, remove_background: bool, remover: BackgroundRemover | None = None,
                  notes: list | None = None) -> np.ndarray:
    """Any supported input -> the (H, W, 3) uint8 image the model sees.

    notes: if given, warnings for the user are appended (e.g. a tiny object).
    """
    image = open_image(source)
    rgba = to_rgba8(image)
    if not has_transparency(rgba):
        if remove_background:
            why = ("its alpha channel is fully opaque" if "A" in image.getbands()
                   else "this image has no transparency")
            rgba = (remover or BackgroundRemover())(rgba, why)
            if not (rgba[..., 3] > 0).any():
                raise InputImageError(
                    "background removal found no object in the image; try an image with an "
                    "alpha channel or turn background removal off"
                )
    elif not (rgba[..., 3] > 0).any():
        raise InputImageError("the image is fully transparent: there is no object to reconstruct")
    height, width = visible_crop(rgba).shape[:2]
    if notes is not None and max(height, width) < SMALL_OBJECT_SIDE:
        notes.append(f"the object is only {width} x {height} pixels: the model sees a blur and the "
                     "shape will be a guess; use a larger image of it")
    return composite_on_grey(frame_foreground(rgba, foreground_ratio))
