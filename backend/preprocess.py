"""Input preparation: read any common image, cut out the object, frame it, put it on grey.

Follows the reference run script (see SPEC.md, "Input preparation") so the model sees
the same pixels; adds the checks a user needs (unreadable, empty, huge, transparent).
"""

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BackgroundRemovalError, InputImageError

MAX_INPUT_PIXELS = 8192 * 8192  # beyond this an input is refused (decompression bombs)
GREY = 0.5


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
            path = Path(source)
            if not path.is_file():
                raise InputImageError(f"{name}: no such file")
            stream = path
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
        pixels = (np.clip(np.nan_to_num(pixels.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
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
        grey = np.clip(np.nan_to_num(np.asarray(image)), 0.0, 1.0) * 255.0 + 0.5
        image = Image.fromarray(grey.astype(np.uint8), "L")
    return np.asarray(image.convert("RGBA"), dtype=np.uint8).copy()


def has_transparency(rgba: np.ndarray) -> bool:
    return bool((rgba[..., 3] < 255).any())


class BackgroundRemover:
    """One rembg session, created on first use and kept (the model load is the slow part)."""

    def __init__(self, model_name: str = "u2net"):
        self.model_name = model_name
        self._session = None

    def _ensure_session(self):
        if self._session is not None:
            return
        try:
            import rembg
        except ImportError:
            raise BackgroundRemovalError(
                "this image has no transparency, and removing its background needs the rembg "
                "package, which is not installed: install it (pip install rembg onnxruntime), "
                "give an image with an alpha channel, or turn background removal off "
                "(--no-remove-bg)"
            ) from None
        home = _rembg_model_folder(rembg, self.model_name)
        try:
            self._session = rembg.new_session(self.model_name)
        except Exception as exc:  # rembg fetches its model on first use; offline that fails
            raise BackgroundRemovalError(
                f"could not load rembg's '{self.model_name}' background-removal model "
                f"({type(exc).__name__}: {exc}). Put {self.model_name}.onnx in {home} (or set "
                "U2NET_HOME), give an image with an alpha channel, or turn background "
                "removal off (--no-remove-bg)"
            ) from None

    def __call__(self, rgba: np.ndarray) -> np.ndarray:
        self._ensure_session()
        import rembg

        out = rembg.remove(Image.fromarray(rgba[..., :3], "RGB"), session=self._session)
        return np.asarray(out.convert("RGBA"), dtype=np.uint8).copy()


def _rembg_model_folder(rembg, model_name: str) -> str:
    """Where rembg looks for its model files (the layout changed across rembg versions)."""
    for session_class in getattr(rembg.sessions, "sessions_class", []):
        if session_class.name() == model_name:
            locate = getattr(session_class, "model_dir", None) or getattr(session_class, "u2net_home")
            return locate()
    return os.environ.get("U2NET_HOME", os.path.join(os.path.expanduser("~"), ".u2net"))


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
