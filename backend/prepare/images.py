"""Reading an input image: any common file, bytes, PIL image or array -> RGBA bytes.

Adds the checks a user needs: unreadable, empty, too large (decompression bombs).
"""

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..bridge.errors import InputImageError
from ..bridge.image_files import checked_path
from ..bridge.pixels import non_finite_problem

MAX_INPUT_PIXELS = 8192 * 8192  # beyond this an input is refused (decompression bombs)


def _describe(source) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return "the input image"


def open_image(source) -> Image.Image:
    """A fully decoded PIL image from a path, encoded bytes, a PIL image or an array."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        return Image.fromarray(_array_to_rgba8(source))
    else:
        name = _describe(source)
        if isinstance(source, (bytes, bytearray, memoryview)):
            stream = io.BytesIO(bytes(source))
        else:
            stream = checked_path(Path(source))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(stream)
                _check_size(image.size, name)
                image.load()
        except InputImageError:
            raise
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise InputImageError(f"{name} is too large to process safely (over {MAX_INPUT_PIXELS:,} pixels)") from None
        except UnidentifiedImageError:
            raise InputImageError(f"{name} is not an image file this tool can read (PNG, JPEG, WebP, TIFF or BMP)") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise InputImageError(f"{name} could not be decoded (truncated or damaged file?): {exc}") from None
    _check_size(image.size, _describe(source))
    return ImageOps.exif_transpose(image)


def _check_size(size, name):
    width, height = size
    if width <= 0 or height <= 0:
        raise InputImageError(f"{name} has no pixels ({width} x {height})")
    if width * height > MAX_INPUT_PIXELS:
        raise InputImageError(
            f"{name} is {width} x {height} pixels, more than the {MAX_INPUT_PIXELS:,} allowed; "
            "scale it down first"
        )


def _array_to_rgba8(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) uint8 or float in [0, 1], top row first -> (H, W, 4) uint8."""
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise InputImageError(f"image pixels must be (height, width, 3 or 4), got {pixels.shape}")
    _check_size((pixels.shape[1], pixels.shape[0]), "the input image")
    if pixels.dtype != np.uint8:
        problem = non_finite_problem(pixels, "the input image")
        if problem:
            raise InputImageError(problem)
        pixels = (np.clip(pixels.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if pixels.shape[2] == 3:
        pixels = np.concatenate([pixels, np.full(pixels.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(pixels)


def to_rgba8(image: Image.Image) -> np.ndarray:
    """Any PIL mode (palette, grey, 16-bit, float, CMYK...) -> (H, W, 4) uint8."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        grey = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if mode.startswith("I;16") or grey.max() > 255 else 255.0
        grey = np.clip(grey / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(grey, "L")
    elif mode == "F":
        problem = non_finite_problem(np.asarray(image), "the input image")
        if problem:
            raise InputImageError(problem)
        grey = np.clip(np.asarray(image), 0.0, 1.0) * 255.0 + 0.5
        image = Image.fromarray(grey.astype(np.uint8), "L")
    return np.asarray(image.convert("RGBA"), dtype=np.uint8).copy()


def has_transparency(rgba: np.ndarray) -> bool:
    return bool((rgba[..., 3] < 255).any())
