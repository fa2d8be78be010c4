"""Image to 3D: a picture or a prompt -> a textured mesh, generated in a separate worker.

The Blender side (blender/, operators/, panels/) imports bpy, numpy and the standard
library only; torch lives in the backend Python that the worker runs (backend/, started
by blender/worker_session.py).

Everything is imported in register(), not when this package is imported: so importing it
outside Blender (pytest collects the repository root as a package) costs nothing and
needs no bpy.
"""


def _classes() -> tuple:
    """The add-on's classes in registration order (unregistered in reverse)."""
    from . import operators, panels
    from .blender import preferences, scene_settings

    return (*preferences.classes, *scene_settings.classes, *operators.classes, *panels.classes)


def register():
    import bpy

    from .blender import job_state, scene_settings

    for cls in _classes():
        bpy.utils.register_class(cls)
    scene_settings.register()
    job_state.STATUS.running = False  # a reload must not inherit a dead job


def unregister():
    import bpy

    from .blender import scene_settings, worker_session

    worker_session.close()
    scene_settings.unregister()
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
