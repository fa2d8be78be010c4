"""What the Blender scenarios read off the scene and the add-on (shared by scenarios.py,
text_scenarios.py, toy_scenarios.py): datablock snapshots, mesh arrays, object facts,
recording layouts, how the declared options came out as properties, errors and pids."""

import os
import sys
import time

import bpy
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_env


def snapshot() -> dict:
    """The datablocks a job could leave behind."""
    return {
        "objects": sorted(o.name for o in bpy.data.objects),
        "meshes": sorted(m.name for m in bpy.data.meshes),
        "materials": sorted(m.name for m in bpy.data.materials),
        "images": sorted(i.name for i in bpy.data.images),
        "collections": sorted(c.name for c in bpy.data.collections),
    }


def mesh_arrays(obj) -> dict:
    mesh = obj.data
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    loops = np.empty(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("vertex_index", loops)
    sizes = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_total", sizes)
    attribute = mesh.color_attributes[mesh.color_attributes.active_color_name]
    colors = np.empty(len(attribute.data) * 4, dtype=np.float32)
    attribute.data.foreach_get("color_srgb", colors)
    smooth = np.empty(len(mesh.polygons), dtype=bool)
    mesh.polygons.foreach_get("use_smooth", smooth)
    return {
        "vertices": co.reshape(-1, 3),
        "faces": loops.reshape(-1, 3) if (sizes == 3).all() else loops,
        "colors": np.rint(colors.reshape(-1, 4) * 255).astype(np.uint8),
        "smooth": smooth,
        "matrix_world": np.array(obj.matrix_world, dtype=np.float64),
    }


def object_facts(obj) -> dict:
    mesh = obj.data
    material = mesh.materials[0] if mesh.materials else None
    links = []
    if material is not None and material.node_tree is not None:
        links = [[link.from_node.bl_idname, link.from_socket.identifier, link.to_node.bl_idname, link.to_socket.name,
                  getattr(link.from_node, "layer_name", "")] for link in material.node_tree.links]
    attributes = mesh.color_attributes
    return {
        "name": obj.name,
        "location": list(obj.location),
        "rotation": list(obj.rotation_euler),
        "scale": list(obj.scale),
        "collections": [c.name for c in obj.users_collection],
        "selected": obj.select_get(),
        "active": bpy.context.view_layer.objects.active == obj,
        "selected_count": len(bpy.context.view_layer.objects.selected),
        "color_attribute": {
            "names": [a.name for a in attributes],
            "domain": attributes[0].domain if len(attributes) else None,
            "active": attributes.active_color_name,
            "render": attributes.default_color_name,
        },
        "material": material.name if material else None,
        "links": links,
        "source": obj.get("image_to_3d_source"),
        "settings": obj["image_to_3d_settings"].to_dict() if "image_to_3d_settings" in obj else None,
        "model_input": f"{obj.name} (model input)" in bpy.data.images,
    }


class LayoutRecorder:
    """Stands in for a UILayout: records every call, returns itself for sub-layouts."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append([name, [str(a) for a in args if isinstance(a, str)], sorted(kwargs)])
            return self
        return record


class DrawnPreferences:
    """The preferences as their draw() sees them, with a recording layout."""

    def __init__(self, prefs):
        self._prefs, self.layout = prefs, LayoutRecorder()

    def __getattr__(self, name):
        return getattr(self._prefs, name)


class StubOperator:
    """An operator whose arguments `given` were set by the caller."""

    def __init__(self, given: dict, declared_defaults: dict):
        self.__dict__.update({**declared_defaults, **given})
        self.properties = type("Props", (), {"is_property_set": staticmethod(lambda name: name in given)})()


def option_facts(ext) -> dict:
    """How the declared options came out as Blender properties, and which value wins."""
    declared = ext.backend.bridge.options.ALL_OPTIONS
    operator_rna = bpy.ops.image_to_3d.generate.get_rna_type().properties
    holders = {"operator": operator_rna, "panel": bpy.context.scene.image_to_3d.bl_rna.properties,
               "preferences": bpy.context.preferences.addons[blender_env.MODULE].preferences.bl_rna.properties}
    properties = {}
    for where, rna in holders.items():
        prefix = "default_" if where == "preferences" else ""
        properties[where] = {o.name: {"default": rna[prefix + o.name].default,
                                      "min": getattr(rna[prefix + o.name], "hard_min", None),
                                      "max": getattr(rna[prefix + o.name], "hard_max", None)} for o in declared}
    prefs = bpy.context.preferences.addons[blender_env.MODULE].preferences
    panel = bpy.context.scene.image_to_3d
    defaults = {o.name: o.default for o in declared}
    resolve = ext.blender.options.resolve
    prefs.default_resolution, panel.resolution = 40, 48
    panel.use_defaults = True
    chosen = {"prefs": resolve(StubOperator({}, defaults), panel, prefs)["resolution"]}
    panel.use_defaults = False
    chosen["panel"] = resolve(StubOperator({}, defaults), panel, prefs)["resolution"]
    chosen["operator"] = resolve(StubOperator({"resolution": 32}, defaults), panel, prefs)["resolution"]
    panel.use_defaults, prefs.default_resolution, panel.resolution = True, 256, 256
    return {"declared": {o.name: {"default": o.default, "min": o.minimum, "max": o.maximum} for o in declared},
            "properties": properties, "chosen": chosen}


def process_alive(pid: int) -> bool:
    for _ in range(50):  # close() waits for the worker; allow the exit to be reaped
        try:
            finished, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            finished = pid
        if finished == pid:
            return False
        time.sleep(0.1)
    return True


def error_of(call) -> str | None:
    try:
        call()
    except RuntimeError as error:
        return str(error)
    return None


def dead_pid() -> int:
    import subprocess

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
