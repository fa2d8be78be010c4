"""What identifies this add-on inside Blender, and the few things every part of it needs."""

from pathlib import Path

import bpy

# The extension's own package: bl_ext.<repository>.image_to_3d (this module is one level down).
ADDON_ID = __package__.rpartition(".")[0]
TIMER_SECONDS = 0.1  # how often a running operator looks at its work (never blocking)
UI_AREAS = {"VIEW_3D", "IMAGE_EDITOR", "PREFERENCES"}  # where this add-on draws anything


def preferences():
    """This add-on's preferences, or None when it is not enabled as an add-on."""
    addon = bpy.context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


def user_folder(name: str) -> Path:
    """A folder of this extension's own in Blender's user data (created when missing)."""
    return Path(bpy.utils.extension_path_user(ADDON_ID, path=name, create=True))


def redraw_ui(context=None) -> None:
    """Ask every area this add-on draws in to redraw (progress and status lines)."""
    window_manager = (context or bpy.context).window_manager
    for window in getattr(window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type in UI_AREAS:
                area.tag_redraw()
