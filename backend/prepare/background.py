"""Cutting the object out of an opaque image with rembg's u2net model.

The model file is never fetched here: it comes with the model download
(backend/setup/background_model.py) or is put in place by hand, and rembg is pointed at
it. Without it the job fails at once, saying where the file belongs.
"""

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..bridge.errors import BackgroundRemovalError

MODEL_NAME = "u2net"
MODEL_FILE = f"{MODEL_NAME}.onnx"
FOLDER_ENV = "U2NET_HOME"  # rembg's own setting, which this project uses too


def model_folder() -> Path:
    """Where the background-removal model belongs: $U2NET_HOME, else rembg's ~/.u2net."""
    return Path(os.environ.get(FOLDER_ENV) or Path.home() / ".u2net").expanduser()


def _alternatives(reason: str) -> str:
    return (f"{reason}. Otherwise give an image whose background is transparent (PNG with "
            "alpha), or turn background removal off (--no-remove-bg, or the Remove Background option)")


class BackgroundRemover:
    """One rembg session, created on first use and kept (the model load is the slow part)."""

    def __init__(self):
        self._session = None

    def _ensure_session(self, why: str):
        if self._session is not None:
            return
        try:
            import rembg
        except ImportError:
            raise BackgroundRemovalError(_alternatives(
                f"{why}, so its background must be removed, which needs the rembg package: install "
                "it (pip install rembg onnxruntime; Install Backend does)")) from None
        folder = model_folder()
        if not (folder / MODEL_FILE).is_file():
            raise BackgroundRemovalError(_alternatives(
                f"{why}, so its background must be removed, and the background-removal model "
                f"{MODEL_FILE} is not in {folder}: Download Model in the add-on preferences (or "
                "python -m backend.setup.hub --background-model-dir FOLDER) fetches it, or put "
                f"the file there by hand")) from None
        os.environ[FOLDER_ENV] = str(folder)  # rembg finds the file there and fetches nothing
        try:
            self._session = rembg.new_session(MODEL_NAME)
        except Exception as exc:  # noqa: BLE001 - onnxruntime fails in many ways on a bad file
            raise BackgroundRemovalError(_alternatives(
                f"could not load the background-removal model {folder / MODEL_FILE} "
                f"({type(exc).__name__}: {exc}); download it again")) from None

    def __call__(self, rgba: np.ndarray, why: str = "this image has no transparency") -> np.ndarray:
        """`why`: how the image came to need a cut-out, for the messages."""
        self._ensure_session(why)
        import rembg

        out = rembg.remove(Image.fromarray(rgba[..., :3], "RGB"), session=self._session)
        return np.asarray(out.convert("RGBA"), dtype=np.uint8).copy()
