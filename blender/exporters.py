"""Export one object with Blender's own exporters (glTF, OBJ, PLY, FBX), colours included.

Files appear whole or not at all: the exporter writes into a private staging folder
beside the destination, and each finished file is then renamed into place. A staging
folder left by a process that was killed is removed by the next export into that folder
(backend/bridge/atomic_files.py).
"""

import contextlib
import io
import os
import shutil
import sys

import bpy

from ..backend.bridge import atomic_files

# format -> (file extension, operator path, keyword arguments wanted when the operator has them)
FORMATS = {
    "GLB": (".glb", "export_scene.gltf", {"export_format": "GLB", "use_selection": True,
                                          "export_vertex_color": "MATERIAL", "export_colors": True,
                                          "export_draco_mesh_compression_enable": False}),
    "OBJ": (".obj", "wm.obj_export", {"export_selected_objects": True, "export_colors": True}),
    "PLY": (".ply", "wm.ply_export", {"export_selected_objects": True, "export_colors": "SRGB"}),
    "FBX": (".fbx", "export_scene.fbx", {"use_selection": True, "colors_type": "SRGB"}),
}
FORMAT_ITEMS = [
    ("GLB", "glTF binary (.glb)", "y up, vertex colours through the material"),
    ("OBJ", "Wavefront (.obj)", "vertex colours as OBJ's colour extension"),
    ("PLY", "Stanford (.ply)", "vertex colours per point"),
    ("FBX", "FBX (.fbx)", "vertex colours as sRGB"),
]
# Blender's glTF exporter looks for its optional Draco library and prints an "ERROR" line
# when the library is absent (as in the bpy wheel), although nothing asked for Draco.
FALSE_ALARMS = ("Draco mesh compression is not available",)


def _operator(path: str):
    module, name = path.split(".")
    return getattr(getattr(bpy.ops, module), name)


def file_name(obj_name: str, extension: str, taken: set | None = None) -> str:
    """A file name for the object, not one of `taken` (names already written this run)."""
    stem = bpy.path.clean_name(obj_name)  # "a b" and "a_b" both become "a_b"
    name, number = stem + extension, 1
    while taken is not None and name in taken:
        number += 1
        name = f"{stem}_{number}{extension}"
    return name


def export_object(context, obj, folder: str, fmt: str = "GLB", taken: set | None = None) -> str:
    """Write `obj` alone to <folder>/<object name><ext>; returns the path.

    taken: file names already written by this run; the new name avoids them (and is
    added), so two objects whose names clean to the same file name both survive.
    """
    extension, op_path, wanted = FORMATS[fmt]
    os.makedirs(folder, exist_ok=True)
    atomic_files.remove_stale(folder)
    name = file_name(obj.name, extension, taken)
    staging = atomic_files.temporary_path(folder, "export")
    os.makedirs(staging, exist_ok=True)
    try:
        _run_exporter(context, obj, op_path, wanted, os.path.join(staging, name), fmt)
        # the main file last: its appearance means its companions (.mtl, ...) are there
        written = sorted(os.listdir(staging), key=lambda entry: entry == name)
        for entry in written:
            os.replace(os.path.join(staging, entry), os.path.join(folder, entry))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if taken is not None:
        taken.add(name)
    return os.path.join(folder, name)


def _run_exporter(context, obj, op_path, wanted, path, fmt) -> None:
    operator = _operator(op_path)
    # Exporter options change between Blender versions: pass only those this one has.
    known = {prop.identifier for prop in operator.get_rna_type().properties}
    options = {key: value for key, value in wanted.items() if key in known}
    view_layer = context.view_layer
    selected = list(view_layer.objects.selected)
    active = view_layer.objects.active
    try:
        for other in selected:
            other.select_set(False)
        obj.select_set(True)
        view_layer.objects.active = obj
        with _without_false_alarms():
            result = operator(filepath=path, **options)
    finally:
        obj.select_set(False)
        for other in selected:
            other.select_set(True)
        view_layer.objects.active = active
    if "FINISHED" not in result or not os.path.isfile(path):
        raise RuntimeError(f"{fmt} export of {obj.name} failed")


@contextlib.contextmanager
def _without_false_alarms():
    """Pass the exporter's printed lines on, except the known false alarms."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            yield
    finally:
        for line in captured.getvalue().splitlines(keepends=True):
            if not any(alarm in line for alarm in FALSE_ALARMS):
                sys.stdout.write(line)
