"""Image to 3D (TripoSR): one image -> a textured mesh, generated in a separate worker.

The Blender side (blender/, operators/, panels/) imports bpy, numpy and the standard
library only; torch lives in the backend Python that the worker runs (backend/, started
by blender/worker_session.py).
"""

import bpy

from . import operators, panels
from .blender import job_state, preferences, scene_settings, worker_session

# Registered in this order; unregistered in reverse.
CLASSES = (
    *preferences.classes,
    *scene_settings.classes,
    *operators.classes,
    *panels.classes,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    scene_settings.register()
    job_state.STATUS.running = False  # a reload must not inherit a dead job


def unregister():
    worker_session.close()
    scene_settings.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
