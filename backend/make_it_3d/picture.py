"""The picture, framed exactly as TripoSR frames it (so TripoSR's reference camera sees it
where the coarse field expects it), and its colours and mask at the sizes the stages use."""

import numpy as np
import torch
from PIL import Image

from ..bridge.errors import InputImageError
from ..prepare.background import BackgroundRemover
from ..prepare.framing import composite_on_grey, frame_foreground
from ..prepare.images import has_transparency, open_image, to_rgba8


def framed_picture(picture, foreground_ratio: float, remove_background: bool,
                   remover: BackgroundRemover | None = None) -> np.ndarray:
    """Any input the project reads (path, bytes, PIL image, array) -> the framed square
    (F, F, 4) uint8 RGBA: TripoSR's prepare step before it blends onto grey."""
    rgba = to_rgba8(open_image(picture))
    if not has_transparency(rgba):
        if not remove_background:
            raise InputImageError(
                "Make-It-3D needs the object's outline: give a picture with transparency around the object, "
                "or turn background removal on"
            )
        rgba = (remover or BackgroundRemover())(rgba, "this image has no transparency")
    if not (rgba[..., 3] > 0).any():
        raise InputImageError("the picture has no visible object (every pixel is transparent)")
    return frame_foreground(rgba, foreground_ratio)


def triposr_input(framed: np.ndarray) -> np.ndarray:
    """(F, F, 3) uint8: what TripoSR's encoder sees (backend.prepare.framing.prepare_image)."""
    return composite_on_grey(framed)


def picture_tensors(framed: np.ndarray, size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(colours (size, size, 3), alpha (size, size)) in [0, 1], float32 on `device`.

    Pillow resizes RGBA premultiplied, so colours at the outline are not darkened by the
    transparent pixels around them; colours where alpha is 0 are meaningless."""
    image = Image.fromarray(framed, "RGBA")
    if image.size != (size, size):
        method = Image.Resampling.BOX if image.size[0] > size else Image.Resampling.BICUBIC
        image = image.resize((size, size), method)
    pixels = torch.from_numpy(np.asarray(image).astype(np.float32) / 255.0).to(device)
    return pixels[..., :3].contiguous(), pixels[..., 3].contiguous()


def on_background(colours: torch.Tensor, alpha: torch.Tensor, background) -> torch.Tensor:
    """(H, W, 3) the picture over a solid colour (a float or (3,) tensor)."""
    return colours * alpha[..., None] + torch.as_tensor(background, device=colours.device) * (1 - alpha[..., None])
