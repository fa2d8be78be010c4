"""Export one object with Blender's own exporters (glTF, OBJ, PLY, FBX), colours included."""

import os

import bpy

# format -> (file extension, operator path, keyword arguments wanted when the operator has them)
FORMATS = {
    "GLB": (".glb", "export_scene.gltf", {"export_format": "GLB", "use_selection": True,
                                          "export_vertex_color": "MATERIAL", "export_colors": True}),
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


def _operator(path: str):
    module, name = path.split(".")
    return getattr(getattr(bpy.ops, module), name)


def export_object(context, obj, folder: str, fmt: str = "GLB") -> str:
    """Write `obj` alone to <folder>/<object name><ext>; returns the path."""
    extension, op_path, wanted = FORMATS[fmt]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, bpy.path.clean_name(obj.name) + extension)
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
        result = operator(filepath=path, **options)
    finally:
        obj.select_set(False)
        for other in selected:
            other.select_set(True)
        view_layer.objects.active = active
    if "FINISHED" not in result or not os.path.isfile(path):
        raise RuntimeError(f"{fmt} export of {obj.name} to {path} failed")
    return path
