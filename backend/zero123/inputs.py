"""The picture Zero123 sees: One-2-3-45's preprocessing (run.py preprocess and
utils/utils.py image_preprocess_nosave), with rembg's cut-out where it uses SAM.

1. thumbnail to at most 512 x 512 (Lanczos);
2. the cut-out: the image's own alpha when it has transparency, else rembg (the
   project's backend/prepare/background.py);
3. carve: the bounding box of alpha > 0, pasted centred (at side // 2 - h // 2) into a
   transparent square of side int(max(w, h) / 0.75);
4. resize to 256 x 256 (Lanczos, PIL premultiplies the alpha) and composite on white,
   rgb * a + (1 - a), truncated back to uint8.
"""

import numpy as np
from PIL import Image

from ..bridge.errors import InputImageError
from ..prepare.background import BackgroundRemover
from ..prepare.images import has_transparency, open_image, to_rgba8

THUMBNAIL = 512
SIZE = 256
FILL_RATIO = 0.75


def cut_out(source, remove_background: bool = True, remover: BackgroundRemover | None = None) -> np.ndarray:
    """Any supported input -> RGBA uint8, at most 512 on a side, the object in the alpha."""
    image = Image.fromarray(to_rgba8(open_image(source)), "RGBA")
    image.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
    rgba = np.asarray(image, dtype=np.uint8).copy()
    if has_transparency(rgba):
        if not (rgba[..., 3] > 0).any():
            raise InputImageError("the image is fully transparent: there is no object to draw from other sides")
        return rgba
    if not remove_background:
        return rgba  # the whole picture is the object
    rgba = (remover or BackgroundRemover())(rgba, "this image has no transparency")
    if not (rgba[..., 3] > 0).any():
        raise InputImageError("background removal found no object in the image; try an image with an alpha "
                              "channel around the object")
    return rgba


def carve(rgba: np.ndarray) -> np.ndarray:
    """The cut-out, centred and scaled onto a white 256 x 256 square: uint8 (256, 256, 3)."""
    rows = np.flatnonzero((rgba[..., 3] > 0).any(axis=1))
    cols = np.flatnonzero((rgba[..., 3] > 0).any(axis=0))
    if rows.size == 0:
        raise InputImageError("the image is fully transparent: there is no object to draw from other sides")
    y, x = rows[0], cols[0]
    h, w = rows[-1] - y + 1, cols[-1] - x + 1
    side = int(max(w, h) / FILL_RATIO)
    padded = np.zeros((side, side, 4), dtype=np.uint8)
    center = side // 2
    padded[center - h // 2:center - h // 2 + h, center - w // 2:center - w // 2 + w] = rgba[y:y + h, x:x + w]
    resized = np.array(Image.fromarray(padded).resize((SIZE, SIZE), Image.Resampling.LANCZOS)) / 255.0
    rgb = resized[..., :3] * resized[..., -1:] + (1 - resized[..., -1:])
    return (rgb * 255).astype(np.uint8)


def prepare_input(source, remove_background: bool = True, remover: BackgroundRemover | None = None) -> np.ndarray:
    """Any supported input -> the (256, 256, 3) uint8 picture on white that Zero123 sees."""
    return carve(cut_out(source, remove_background, remover))
