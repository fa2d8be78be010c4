"""The one WorkerClient of this Blender session, built from the add-on preferences.

The worker keeps the model loaded between jobs, so the client lives as long as the
add-on: it is rebuilt only when the backend Python, model or device change, and closed
on unregister and at exit (no orphan worker processes).
"""

import atexit
import os
import sys

import bpy

from ..backend.bridge.options import looks_like_hub_id
from .addon import ADDON_ID, preferences

_client = None
_key = None


def backend_python(prefs=None) -> str:
    prefs = prefs if prefs is not None else preferences()
    path = getattr(prefs, "python_path", "") if prefs else ""
    # Where bpy runs as a module, this interpreter may itself have the backend's packages.
    return bpy.path.abspath(path) if path else sys.executable


def model_path(prefs=None) -> str:
    prefs = prefs if prefs is not None else preferences()
    path = getattr(prefs, "model_path", "") if prefs else ""
    return bpy.path.abspath(path) if path else ""


def device(prefs=None) -> str:
    prefs = prefs if prefs is not None else preferences()
    return (getattr(prefs, "device", "AUTO") if prefs else "AUTO").lower()


def precision(prefs=None) -> str:
    prefs = prefs if prefs is not None else preferences()
    return (getattr(prefs, "precision", "FLOAT32") if prefs else "FLOAT32").lower()


def idle_unload_seconds(prefs=None) -> float:
    prefs = prefs if prefs is not None else preferences()
    return 60.0 * (getattr(prefs, "unload_after_minutes", 0) if prefs else 0)


def background_model_dir() -> str | None:
    """Where the background-removal model lives for this add-on (Download Model puts it there)."""
    try:
        return bpy.utils.extension_path_user(ADDON_ID, path="models/background", create=True)
    except (ValueError, RuntimeError):  # loaded outside the extension system
        return None


def log_dir() -> str | None:
    try:
        return bpy.utils.extension_path_user(ADDON_ID, path="logs", create=True)
    except (ValueError, RuntimeError):  # loaded outside the extension system
        return None


def client():
    """The session's WorkerClient for the current preferences (started lazily by submit)."""
    global _client, _key
    from ..backend.bridge.client import WorkerClient  # standard library + numpy only

    key = (backend_python(), model_path(), device(), precision(), idle_unload_seconds())
    if _client is not None and _key != key:
        close()
    if _client is None:
        background = background_model_dir()
        _client = WorkerClient(python=key[0], model=key[1], device=key[2], log_dir=log_dir(), precision=key[3],
                               idle_unload=key[4], env={"U2NET_HOME": background} if background else None)
        _key = key
    return _client


def model_status() -> str:
    """One line for the panel: whether the model is loaded, where, and how big."""
    if _client is None or not _client.is_running:
        return "Model not loaded"
    state = _client.model_state
    if state is None:
        return "Model process running, no model loaded"
    return f"Model loaded on {state['device'].upper()} ({state['weights_bytes'] / 2**30:.2f} GB of weights)"


def is_running() -> bool:
    return _client is not None and _client.is_running


def close() -> None:
    global _client, _key
    if _client is not None:
        try:
            _client.close()
        finally:
            _client, _key = None, None


def readiness(prefs) -> tuple[bool, str]:
    """(ready, what to do) for the preferences' status line."""
    python = backend_python(prefs)
    model = model_path(prefs)
    if not os.path.isfile(python):
        return False, f"Backend Python not found at {python}: click Install backend or pick an existing one"
    if not model:
        return False, "No model folder: click Download model or choose a folder with config.yaml and model.ckpt"
    if not os.path.isdir(model) and looks_like_hub_id(model):
        return True, f"Ready: the worker fetches {model} from the model hub on first use (network)"
    missing = [name for name in ("config.yaml", "model.ckpt") if not os.path.isfile(os.path.join(model, name))]
    if missing:
        return False, f"Model folder lacks {' and '.join(missing)}: download the model or pick another folder"
    return True, "Ready" + (" (worker running, model loaded)" if is_running() else "")


atexit.register(close)
