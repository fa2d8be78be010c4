"""Cutting the object out of an opaque image with rembg's u2net model."""

import os

import numpy as np
from PIL import Image

from ..bridge.errors import BackgroundRemovalError


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
        except Exception as exc:  # noqa: BLE001 - rembg fetches its model on first use; offline that fails in many ways
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
            locate = getattr(session_class, "model_dir", None) or session_class.u2net_home
            return locate()
    return os.environ.get("U2NET_HOME", os.path.join(os.path.expanduser("~"), ".u2net"))
