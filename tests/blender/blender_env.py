"""Inside a test subprocess: install the built zip into a throwaway Blender and enable it.

Imported by the scenario scripts (tests/blender/scenarios/*.py), which run in their own
Python because bpy's state is process-global. The environment variables that point
Blender's user folders at a temporary directory are set by the pytest side before
this process starts, so nothing touches ~/.config/blender.
"""

import os
import sys

import bpy

EXTENSION_ID = "image_to_3d"
REPO = "user_default"
MODULE = f"bl_ext.{REPO}.{EXTENSION_ID}"


def install_and_enable(zip_path: str):
    """package_install_files (Blender's own installer) + enable; returns the add-on module."""
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo=REPO, enable_on_install=True)
    assert result == {"FINISHED"}, result
    if MODULE not in bpy.context.preferences.addons:
        bpy.ops.preferences.addon_enable(module=MODULE)
    assert MODULE in bpy.context.preferences.addons, "extension did not enable"
    return sys.modules[MODULE]


def configure(python: str, model: str, device: str = "CPU"):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.python_path = python
    prefs.model_path = model
    prefs.device = device
    return prefs


def raw_surface():
    """The panel's preset to Raw Surface: scenarios about everything but the mesh stage
    (scenario_asset tests that) compare with the backend's raw result, and run faster."""
    bpy.context.scene.image_to_3d.preset = "RAW"


def main_args() -> dict:
    """Scenario parameters from the environment (set by the pytest side)."""
    return {key[len("I3D_"):].lower(): value for key, value in os.environ.items() if key.startswith("I3D_")}
