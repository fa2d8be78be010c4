"""What to send the worker for a Blender image or a file: a path or RGBA pixels.

Blender keeps pixels bottom row first and floats in [0, 1]; the worker wants the top row
first. Alpha is kept, so a cut-out render needs no background removal.
"""

import os
import tempfile
from dataclasses import dataclass
from typing import ClassVar

import bpy
import numpy as np

from ..backend.bridge.pixels import non_finite_problem

# Files the backend reads itself (Pillow); anything else Blender shows (EXR, HDR, DDS...)
# is sent as the pixels Blender decoded.
PATH_FORMATS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".tga"}
# Colour spaces whose float pixels are linear and need the sRGB curve for the model.
LINEAR_SPACES = {"Linear Rec.709", "Linear", "Linear CIE-XYZ E", "Non-Color", "Linear Rec.2020", "ACEScg"}


@dataclass
class ImageInput:
    """Keyword arguments for WorkerClient.submit, plus a name and where it came from."""

    task: ClassVar[str] = "image"
    name: str
    source: str  # file path or "image:<Blender image name>", stored on the object
    image_path: str | None = None
    image_pixels: np.ndarray | None = None
    prompt: str | None = None  # for a family whose image jobs take one (what the picture shows)

    def submit_kwargs(self) -> dict:
        prompt = {} if self.prompt is None else {"prompt": self.prompt}
        if self.image_path is not None:
            return {"image_path": self.image_path, **prompt}
        return {"image_pixels": self.image_pixels, **prompt}


def object_name(path_or_name: str) -> str:
    """'chair.png' -> 'chair'; Blender image names keep their stem too."""
    base = os.path.basename(path_or_name.rstrip("/\\")) or path_or_name
    stem, ext = os.path.splitext(base)
    return stem if ext and stem else base


def from_file(path: str) -> ImageInput:
    path = os.path.abspath(bpy.path.abspath(path))
    return ImageInput(object_name(path), path, image_path=path)


def from_image(image: bpy.types.Image) -> ImageInput:
    """A Blender image of any kind: file-backed, packed, generated or Render Result."""
    source = f"image:{image.name}"
    if image.type == "RENDER_RESULT":
        return ImageInput(object_name(image.name), source, image_pixels=render_result_pixels(image))
    filepath = bpy.path.abspath(image.filepath) if image.filepath else ""
    readable = os.path.splitext(filepath)[1].lower() in PATH_FORMATS
    if image.source == "FILE" and not image.packed_file and not image.is_dirty and readable and os.path.isfile(filepath):
        # The file on disk is what the user sees: send the path, the worker reads it.
        return ImageInput(object_name(image.name), os.path.abspath(filepath), image_path=os.path.abspath(filepath))
    return ImageInput(object_name(image.name), source, image_pixels=image_pixels(image))


def image_pixels(image: bpy.types.Image) -> np.ndarray:
    """(H, W, 4) uint8 RGBA, top row first, sRGB-encoded (a quarter of float32's pipe)."""
    width, height = image.size
    if not (width and height) or (not image.has_data and not _load(image)):
        raise ValueError(f"image '{image.name}' has no pixels")
    channels = image.channels
    flat = np.empty(width * height * channels, dtype=np.float32)
    image.pixels.foreach_get(flat)
    pixels = flat.reshape(height, width, channels)[::-1]
    rgba = np.ones((height, width, 4), dtype=np.float32)
    if channels >= 3:
        rgba[..., :3] = pixels[..., :3]
        if channels == 4:
            rgba[..., 3] = pixels[..., 3]
    else:  # grey (+ alpha)
        rgba[..., :3] = pixels[..., :1]
        if channels == 2:
            rgba[..., 3] = pixels[..., 1]
    problem = non_finite_problem(rgba, f"image '{image.name}'")  # 8-bit colours would hide them
    if problem:
        raise ValueError(problem)
    if image.is_float and image.colorspace_settings.name in LINEAR_SPACES:
        rgba[..., :3] = linear_to_srgb(rgba[..., :3])
    return (np.clip(rgba, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _load(image) -> bool:
    try:
        len(image.pixels)  # touching the pixels loads the buffer
    except Exception:  # noqa: BLE001 - a broken image is reported by the caller
        return False
    return image.has_data


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    values = np.clip(values, 0.0, None)
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * np.power(values, 1 / 2.4) - 0.055)


def render_result_pixels(image: bpy.types.Image) -> np.ndarray:
    """The Render Result's pixels are not readable from Python: save it and read back.

    save_render writes what the user sees (view transform applied); the scene's output
    format is switched to RGBA PNG for the save so alpha survives, then restored.
    """
    scene = bpy.context.scene
    settings = scene.render.image_settings
    saved = (settings.file_format, settings.color_mode, settings.color_depth)
    handle, path = tempfile.mkstemp(suffix=".png", prefix="image_to_3d_render_")
    os.close(handle)
    try:
        settings.file_format = "PNG"
        settings.color_mode = "RGBA"
        settings.color_depth = "8"
        image.save_render(path, scene=scene)
        loaded = bpy.data.images.load(path, check_existing=False)
        try:
            return image_pixels(loaded)
        finally:
            bpy.data.images.remove(loaded)
    except RuntimeError as error:
        raise ValueError(f"the Render Result is empty: render first ({error})") from None
    finally:
        settings.file_format, settings.color_mode, settings.color_depth = saved
        os.unlink(path)
