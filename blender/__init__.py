"""The Blender side's helpers (bpy, numpy and the standard library; never torch).

    addon.py           the add-on's id, its preferences, user folders, redraws
    options.py         the job options as Blender properties, and which value wins
    preferences.py     the add-on preferences (backend Python, model, device, defaults)
    scene_settings.py  the panel's settings, saved with the .blend
    job_state.py       what a running or finished job shows in the UI (STATUS)
    runs.py            one image, or a folder of them, through the worker
    worker_session.py  the session's one worker client
    image_source.py    pixels or a path out of a Blender image or file
    mesh_builder.py    the result's arrays -> a Blender object with material
    exporters.py       Blender's own exporters for batch and headless exports
"""
