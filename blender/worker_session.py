"""The one job client of this Blender session, built from the add-on preferences.

"Run On: This Computer" gives a WorkerClient: the worker keeps the model loaded between
jobs, so the client lives as long as the add-on; it is rebuilt only when the backend
Python, model or device change, and closed on unregister and at exit (no orphan worker
processes). "Run On: Server" gives a ServerClient for the URL and token in the
preferences; both have the same interface, so the runs need not know which it is.
The token is only ever passed to the client: never stored on the scene, never logged.
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


def on_server(prefs=None) -> bool:
    prefs = prefs if prefs is not None else preferences()
    return bool(prefs) and getattr(prefs, "run_on", "LOCAL") == "SERVER"


def server_settings(prefs=None) -> tuple[str, str, str]:
    """(url, token, CA file) from the preferences; empty strings where unset."""
    prefs = prefs if prefs is not None else preferences()
    ca_file = getattr(prefs, "server_ca_file", "")
    return (getattr(prefs, "server_url", "").strip(), getattr(prefs, "server_token", "").strip(),
            bpy.path.abspath(ca_file) if ca_file else "")


def model_label(prefs=None) -> str:
    """What made the results, stored on each object (batch re-runs compare it): the model
    folder, or the server's URL (never its token)."""
    return f"server {server_settings(prefs)[0]}" if on_server(prefs) else model_path(prefs)


def setup_problem(prefs=None) -> str | None:
    """Why no job can start with these preferences, or None."""
    if on_server(prefs):
        url, token, _ = server_settings(prefs)
        if not url or not token:
            return "Run On is Server: set the server's URL and access token in the add-on preferences"
        if not bpy.app.online_access:  # Blender's rule for extensions that use the network
            return ("Run On is Server, which sends images over the network: allow online access "
                    "(Preferences > System > Network)")
        return None
    return None if model_path(prefs) else "No model folder: set it in the add-on preferences"


def client():
    """The session's job client for the current preferences (a worker starts lazily on submit)."""
    global _client, _key
    if on_server():
        from ..backend.bridge.server_client import ServerClient  # standard library + numpy only

        key = ("server", *server_settings())
        if _client is not None and _key != key:
            close()
        if _client is None:
            url, token, ca_file = key[1:]
            _client = ServerClient(url, token, token_source="the access token in the add-on preferences",
                                   ca_file=ca_file or None)
            _key = key
        return _client
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
    if on_server():
        return f"Jobs run on the server at {server_settings()[0] or '(no URL set)'}"
    if not is_running():
        return "Model not loaded"
    state = _client.model_state
    if state is None:
        return "Model process running, no model loaded"
    return f"Model loaded on {state['device'].upper()} ({state['weights_bytes'] / 2**30:.2f} GB of weights)"


def is_running() -> bool:
    """True while a local model process runs (a server's model is not ours to release)."""
    return _client is not None and getattr(_client, "is_running", False)


def close() -> None:
    global _client, _key
    if _client is not None:
        try:
            _client.close()
        finally:
            _client, _key = None, None


def readiness(prefs) -> tuple[bool, str]:
    """(ready, what to do) for the preferences' status line."""
    if on_server(prefs):
        problem = setup_problem(prefs)
        return (False, problem) if problem else (True, f"Ready: jobs run on the server at {server_settings(prefs)[0]}")
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
