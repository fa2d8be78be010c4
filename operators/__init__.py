"""The add-on's operators. Each module exposes `classes`; the root registers them in order.

install_backend and download_model come from another part of the project and are
optional here: the add-on still works with a Python and model set by hand.
"""

import importlib
import importlib.util
import traceback

from . import batch, generate

OPTIONAL_MODULES = ("install_backend", "download_model")


def optional_module(name: str):
    """operators/<name>.py when it exists and imports; None otherwise."""
    if importlib.util.find_spec(f"{__package__}.{name}") is None:
        return None
    try:
        return importlib.import_module(f".{name}", __package__)
    except Exception:  # noqa: BLE001 - a broken optional module must not disable generation
        traceback.print_exc()
        return None


def modules() -> list:
    found = [generate, batch]
    found += [m for m in (optional_module(name) for name in OPTIONAL_MODULES) if m is not None]
    return found


classes = tuple(cls for module in modules() for cls in getattr(module, "classes", ()))
