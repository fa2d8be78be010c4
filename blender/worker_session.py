"""The one job client of this Blender session, built from the add-on preferences.

"Run On: This Computer" gives a WorkerClient: the worker keeps the model loaded between
jobs, so the client lives as long as the add-on; it is rebuilt only when the backend
Python, model or device change, and closed on unregister and at exit (no orphan worker
processes). "Run On: Server" gives a ServerClient for the URL and token in the
preferences; both have the same interface, so the runs need not know which it is.
The token is only ever passed to the client: never stored on the scene, never logged.
Each model slot of a family (backend/families/contract.py ModelSlot) has its own folder
preference; a job sends the folders its family and input need, and the worker loads
them when they are not the ones it holds.
"""

import atexit
import os
import sys
from pathlib import Path

import bpy

from ..backend.bridge.errors import BackendError
from ..backend.bridge.options import FAMILIES, check_family_takes, looks_like_hub_id
from ..backend.families.registry import declared
from ..backend.model_folder import check_slot_folder, job_slots, model_folders_inside
from .addon import ADDON_ID, preferences

DEFAULT_FAMILY = FAMILIES[0].identifier

_client = None
_key = None


def backend_python(prefs=None) -> str:
    prefs = prefs if prefs is not None else preferences()
    path = getattr(prefs, "python_path", "") if prefs else ""
    # Where bpy runs as a module, this interpreter may itself have the backend's packages.
    return bpy.path.abspath(path) if path else sys.executable


def slot_path(prefs, slot) -> str:
    """The folder (or hub id) a model slot's preference holds, "" when unset."""
    prefs = prefs if prefs is not None else preferences()
    path = getattr(prefs, slot.preference, "") if prefs else ""
    return bpy.path.abspath(path) if path else ""


def model_path(prefs=None, family: str = DEFAULT_FAMILY, task: str = "image") -> str | dict:
    """The model folder (or hub id) for jobs of this family and input, "" when unset; for
    a family whose jobs need several, {slot id: folder} ("" when any is unset)."""
    slots = job_slots(family, task)
    paths = {slot.identifier: slot_path(prefs, slot) for slot in slots}
    if len(slots) == 1:
        return paths[slots[0].identifier]
    return paths if all(paths.values()) else ""


def set_model(prefs, family: str, task: str, model: str) -> None:
    """Point the preferences at `model` for jobs of this family and input: the folder for a
    family with one slot, else the model folders inside it, each to its slot."""
    slots = job_slots(family, task)
    if len(slots) == 1:
        setattr(prefs, slots[0].preference, model)
        return
    inside = {held.identifier: str(path) for path, held in model_folders_inside(Path(model))}
    for slot in slots:
        setattr(prefs, slot.preference, inside.get(slot.identifier, ""))


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


def model_label(prefs=None, family: str = DEFAULT_FAMILY, task: str = "image") -> str:
    """What made the results, stored on each object (batch re-runs compare it): the model
    folder (folders, joined), or the server's URL (never its token)."""
    if on_server(prefs):
        return f"server {server_settings(prefs)[0]}"
    model = model_path(prefs, family, task)
    return " + ".join(model.values()) if isinstance(model, dict) else model


def job_model(family: str, task: str, prefs=None) -> dict:
    """submit()'s keywords naming the job's model: its folder for the local worker; none
    for a server, which runs its own."""
    return {} if on_server(prefs) else {"model": model_path(prefs, family, task)}


def setup_problem(prefs=None, family: str = DEFAULT_FAMILY, task: str = "image") -> str | None:
    """Why no job of this family and input can start with these preferences, or None."""
    try:
        check_family_takes(family, task)
    except BackendError as error:
        return error.message
    if on_server(prefs):
        url, token, _ = server_settings(prefs)
        if not url or not token:
            return "Run On is Server: set the server's URL and access token in the add-on preferences"
        if not bpy.app.online_access:  # Blender's rule for extensions that use the network
            return ("Run On is Server, which sends images over the network: allow online access "
                    "(Preferences > System > Network)")
        return None
    unset = [slot.label for slot in job_slots(family, task) if not slot_path(prefs, slot)]
    if not unset:
        return None
    return f"No {' or '.join(unset)} folder: set it in the add-on preferences (or Download it there)"


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


def readiness(prefs, family: str = DEFAULT_FAMILY, task: str = "image") -> tuple[bool, str]:
    """(ready, what to do) for jobs of this family and input (the status lines)."""
    if on_server(prefs):
        problem = setup_problem(prefs)
        return (False, problem) if problem else (True, f"Ready: jobs run on the server at {server_settings(prefs)[0]}")
    python = backend_python(prefs)
    if not os.path.isfile(python):
        return False, f"Backend Python not found at {python}: click Install backend or pick an existing one"
    for slot in job_slots(family, task):
        ready, message = model_readiness(prefs, family, slot)
        if not ready:
            return ready, message
    if ready and message == "Ready":
        message += " (worker running, model loaded)" if is_running() else ""
    return ready, message


def model_readiness(prefs, family: str, slot) -> tuple[bool, str]:
    """(ready, what to do) for one model folder preference, checked as the worker checks
    it (backend/model_folder.py, no torch)."""
    model = slot_path(prefs, slot)
    if not model:
        return False, f"No {slot.label} folder: click Download or choose a folder with {slot.contents}"
    if not os.path.isdir(model) and looks_like_hub_id(model):
        return True, f"Ready: the worker fetches {model} from the model hub on first use (network)"
    try:
        check_slot_folder(model, slot, family)
    except BackendError as error:
        return False, f"{declared(family).label}: {error.message}"
    return True, "Ready"


atexit.register(close)
