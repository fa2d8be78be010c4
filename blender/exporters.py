"""Export one object with Blender's own exporters (glTF, OBJ, PLY, FBX), colours and
textures included: GLB embeds them, FBX embeds them, OBJ gets its .mtl and PNGs beside
it, PLY keeps the vertex colours.

Files appear whole or not at all, and never over an existing file: the exporter writes
into a private staging folder beside the destination, and each finished file is then
published under a free name. A staging folder left by a process that was killed is
removed by a later export into that folder (backend/bridge/atomic_files.py).
"""

import contextlib
import io
import os
import sys

import bpy

from ..backend.bridge import atomic_files
from ..backend.bridge.file_names import free_stem

# format -> (file extension, operator path, keyword arguments wanted when the operator has them)
FORMATS = {
    "GLB": (".glb", "export_scene.gltf", {"export_format": "GLB", "use_selection": True,
                                          "export_vertex_color": "MATERIAL", "export_colors": True,
                                          "export_draco_mesh_compression_enable": False}),
    # STRIP: the .mtl names the PNGs that _images_beside writes next to it
    "OBJ": (".obj", "wm.obj_export", {"export_selected_objects": True, "export_colors": True,
                                      "export_materials": True, "path_mode": "STRIP"}),
    "PLY": (".ply", "wm.ply_export", {"export_selected_objects": True, "export_colors": "SRGB"}),
    "FBX": (".fbx", "export_scene.fbx", {"use_selection": True, "colors_type": "SRGB", "path_mode": "COPY",
                                         "embed_textures": True}),
}
FORMAT_ITEMS = [
    ("GLB", "glTF binary (.glb)", "y up; textures embedded, or vertex colours through the material"),
    ("OBJ", "Wavefront (.obj)", "textures as .mtl and PNGs beside it, vertex colours as OBJ's colour extension"),
    ("PLY", "Stanford (.ply)", "vertex colours per point"),
    ("FBX", "FBX (.fbx)", "textures embedded, vertex colours as sRGB"),
]
# Blender's glTF exporter looks for its optional Draco library and prints an "ERROR" line
# when the library is absent (as in the bpy wheel), although nothing asked for Draco.
# The OBJ exporter warns about packed images although _images_beside has put them there.
FALSE_ALARMS = ("Draco mesh compression is not available", "Packed image found:")


def _operator(path: str):
    module, name = path.split(".")
    return getattr(getattr(bpy.ops, module), name)


def file_name(obj_name: str, extension: str, taken: set | None = None, folder: str | None = None) -> str:
    """A file name for the object, not one of `taken` (names already written this run)
    nor, with `folder`, of a file there, with its companions (OBJ: .mtl and the two
    PNGs); letter case ignored, Windows device names (con, nul, ...) avoided."""
    stem = bpy.path.clean_name(obj_name)  # "a b" and "a_b" both become "a_b"
    suffixes = [extension] + ([".mtl", "_color.png", "_normal.png"] if extension == ".obj" else [])
    return free_stem(folder or "", stem, suffixes, taken or ()) + extension


def export_object(context, obj, folder: str, fmt: str = "GLB", taken: set | None = None) -> str:
    """Write `obj` alone to <folder>/<object name><ext>; returns the path.

    No file is ever replaced: a name in use in the folder, or in `taken` (file names
    already written by this run, to which the new one is added), gets _2, _3, ...
    """
    extension, op_path, wanted = FORMATS[fmt]
    os.makedirs(folder, exist_ok=True)
    with atomic_files.Staging(folder) as staging:  # clears what a killed earlier run left
        while True:
            name = file_name(obj.name, extension, taken, folder)
            with _images_beside(obj, staging.path, os.path.splitext(name)[0], fmt == "OBJ"):
                _run_exporter(context, obj, op_path, wanted, os.path.join(staging.path, name), fmt)
            try:
                staging.publish(name)  # companions (.mtl, textures) first
                break
            except FileExistsError:  # another run took a name meanwhile: the next free one
                staging.clear()
    if taken is not None:
        taken.add(name)
    return os.path.join(folder, name)


def _run_exporter(context, obj, op_path, wanted, path, fmt) -> None:
    operator = _operator(op_path)
    # Exporter options change between Blender versions: pass only those this one has.
    known = {prop.identifier for prop in operator.get_rna_type().properties}
    options = {key: value for key, value in wanted.items() if key in known}
    view_layer = context.view_layer
    # objects removed by a script are still listed (as None) until the view layer syncs
    selected = [other for other in view_layer.objects.selected if other is not None]
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
def _images_beside(obj, folder: str, stem: str, wanted: bool):
    """The object's packed textures as PNGs in `folder` for the export's duration.

    Blender's OBJ exporter only names image files that exist: a packed image (ours
    have no file) gets no map_Kd. So each is saved as <stem>_color.png or
    <stem>_normal.png and points there until the export is done.
    """
    images = _texture_roles(obj) if wanted else {}
    kept = {image: (image.filepath_raw, image.file_format) for image in images}
    try:
        for image, role in images.items():
            image.filepath_raw = os.path.join(folder, f"{stem}_{role}.png")
            image.file_format = "PNG"
            image.save()
        yield
    finally:
        for image, (path, file_format) in kept.items():
            image.filepath_raw, image.file_format = path, file_format


def _texture_roles(obj) -> dict:
    """image -> "normal" (it feeds a Normal Map node) or "color", for the object's materials."""
    roles = {}
    for material in obj.data.materials:
        if material is None or material.node_tree is None:
            continue
        for node in material.node_tree.nodes:
            if node.bl_idname == "ShaderNodeTexImage" and node.image is not None:
                feeds_normal = any(link.to_node.bl_idname == "ShaderNodeNormalMap" for link in node.outputs["Color"].links)
                roles[node.image] = "normal" if feeds_normal else "color"
    return roles


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
