"""The mesh stage inside real Blender (the bpy wheel): presets, the textured object,
undo, cancel and failure, a moved .blend, exports and their re-import, the batch.

    python tests/blender/asset_scenarios.py asset WORK_DIR

Writes WORK_DIR/asset.json and asset.npz; test_blender_asset.py makes the assertions.
Settings come from the environment as for scenarios.py (I3D_ZIP, I3D_MODEL, I3D_EXAMPLES),
and I3D_CLI_EXPORTS: a folder with the CLI's textured flamingo.glb and flamingo.obj.
"""

import os
import shutil
import sys
import time

if __name__ == "__main__":
    sys.modules["torch"] = None  # the Blender side must work without torch

import bpy
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_env
import scenarios
from scenarios import LayoutRecorder, StubOperator, error_of, mesh_arrays, snapshot

RESOLUTION = 32
FORMATS = ("GLB", "OBJ", "FBX", "PLY")


def material_facts(obj) -> dict:
    """The material's links and images, and the mesh's UV maps."""
    material = obj.data.materials[0] if obj.data.materials else None
    links = images = []
    if material is not None and material.node_tree is not None:
        links = [[link.from_node.bl_idname, link.from_socket.identifier, link.to_node.bl_idname, link.to_socket.name]
                 for link in material.node_tree.links]
        images = [{"name": node.image.name, "size": list(node.image.size), "packed": node.image.packed_file is not None,
                   "colorspace": node.image.colorspace_settings.name}
                  for node in material.node_tree.nodes if node.bl_idname == "ShaderNodeTexImage" and node.image]
    normal_maps = [[node.space, node.uv_map] for node in material.node_tree.nodes
                   if node.bl_idname == "ShaderNodeNormalMap"] if material and material.node_tree else []
    return {"links": links, "images": sorted(images, key=lambda image: image["name"]), "normal_maps": normal_maps,
            "uv_maps": [layer.name for layer in obj.data.uv_layers],
            "colors": [a.name for a in obj.data.color_attributes], "faces": len(obj.data.polygons)}


def image_bytes(image) -> np.ndarray:
    """(H, W, 3) uint8, top row first, of a Blender image."""
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return np.rint(pixels.reshape(height, width, 4)[::-1, :, :3] * 255).astype(np.uint8)


def textured_arrays(obj) -> dict:
    """The mesh, its loop UVs, both images and Blender's own tangent frames (MikkTSpace)."""
    mesh = obj.data
    uvs = np.empty(len(mesh.loops) * 2, dtype=np.float32)
    mesh.uv_layers[0].uv.foreach_get("vector", uvs)
    mesh.calc_tangents(uvmap=mesh.uv_layers[0].name)
    tangents, normals = (np.empty(len(mesh.loops) * 3, dtype=np.float32) for _ in range(2))
    signs = np.empty(len(mesh.loops), dtype=np.float32)
    mesh.loops.foreach_get("tangent", tangents)
    mesh.loops.foreach_get("normal", normals)
    mesh.loops.foreach_get("bitangent_sign", signs)
    images = {node.image.colorspace_settings.name: node.image for node in mesh.materials[0].node_tree.nodes
              if node.bl_idname == "ShaderNodeTexImage"}
    return {**mesh_arrays(obj), "uvs": uvs.reshape(-1, 3, 2),
            "base_color": image_bytes(images["sRGB"]), "normal_map": image_bytes(images["Non-Color"]),
            "tangents": tangents.reshape(-1, 3), "loop_normals": normals.reshape(-1, 3), "signs": signs}


def panel_drawn(ext) -> dict:
    """The rows the panel draws for a preset and for Custom."""
    panel = bpy.context.scene.image_to_3d
    drawn = {}
    for preset in ("GAME_ASSET", "CUSTOM"):
        panel.preset = preset
        layout = LayoutRecorder()
        ext.panels.sidebar.draw_options(layout, panel)
        drawn[preset] = {"props": [args[-1] for name, args, _ in layout.calls if name == "prop"],
                         "labels": sum(name == "label" for name, _, _ in layout.calls)}
    panel.preset = ext.backend.bridge.options.PRESET_OPTION.default
    drawn["summary"] = ext.blender.options.preset_summary("GAME_ASSET")
    return drawn


def resolved_presets(ext) -> dict:
    """Which mesh options a job gets: the preset's, an operator argument over it, Custom's own."""
    declared = {o.name: o.default for o in ext.backend.bridge.options.ALL_OPTIONS}
    resolve, panel = ext.blender.options.resolve, bpy.context.scene.image_to_3d
    prefs = bpy.context.preferences.addons[blender_env.MODULE].preferences
    names = ("max_faces", "texture_size", "smooth_iterations", "keep_floaters")
    pick = lambda values: {name: values[name] for name in names}  # noqa: E731
    out = {}
    for preset in ("RAW", "CLEAN", "GAME_ASSET"):
        panel.preset = preset
        out[preset] = pick(resolve(StubOperator({}, declared), panel, prefs))
    out["operator_wins"] = pick(resolve(StubOperator({"preset": "GAME_ASSET", "texture_size": 256}, declared), panel, prefs))
    panel.preset, panel.use_defaults, panel.max_faces = "CUSTOM", False, 1234
    out["custom_panel"] = pick(resolve(StubOperator({}, declared), panel, prefs))
    panel.use_defaults, prefs.default_max_faces = True, 4321
    out["custom_preferences"] = pick(resolve(StubOperator({}, declared), panel, prefs))
    panel.preset, panel.max_faces, prefs.default_max_faces = "GAME_ASSET", 0, 0
    return out


def cancelled_bake(ext, flamingo) -> dict:
    """A job cancelled in its unwrap or bake stage, through the run the operators drive."""
    settings = ext.backend.bridge.settings.GenerateSettings(resolution=RESOLUTION, texture_size=4096)
    job = ext.blender.runs.GenerateRun(ext.blender.image_source.from_file(flamingo),
                                       ext.blender.runs.RunOptions(settings)).start()
    stage, end = None, None
    while end is None:
        for event in job.client.poll():
            if event.job_id != job.job_id:
                continue
            if event.kind == "progress" and event.stage in ("unwrap", "bake") and stage is None:
                stage = event.stage
                job.cancel()
            elif event.kind in ("result", "error", "cancelled"):
                end = event.kind
        time.sleep(0.01)
    return {"stage": stage, "end": end}


def finished_job(ext, flamingo):
    """A small textured job, run to its end without building anything."""
    settings = ext.backend.bridge.settings.GenerateSettings(resolution=RESOLUTION, max_faces=600, texture_size=128)
    job = ext.blender.runs.GenerateRun(ext.blender.image_source.from_file(flamingo),
                                       ext.blender.runs.RunOptions(settings)).start()
    while not job.poll():
        time.sleep(0.02)
    return job


def failing_build(ext, job) -> str | None:
    """The object's build fails at its last image: everything made before is removed."""
    builder = ext.blender.mesh_builder
    real = builder.texture_image

    def fails_at_the_normal_map(name, pixels, non_color=False):
        if non_color:
            raise MemoryError("no memory for the normal map")
        return real(name, pixels, non_color)

    builder.texture_image = fails_at_the_normal_map
    try:
        ext.blender.runs.finish(bpy.context, job)
    except MemoryError as error:
        return str(error)
    finally:
        builder.texture_image = real
    return None


def reimported(path: str, fmt: str) -> dict:
    """Import a file into the scene, describe what came in, and remove it again."""
    before = set(bpy.data.objects)
    if fmt == "GLB":
        bpy.ops.import_scene.gltf(filepath=path)
    elif fmt == "OBJ":
        bpy.ops.wm.obj_import(filepath=path)
    elif fmt == "FBX":
        bpy.ops.import_scene.fbx(filepath=path)
    else:
        bpy.ops.wm.ply_import(filepath=path)
    new = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
    facts = material_facts(new[0]) if len(new) == 1 else {"objects": len(new)}
    for added in [o for o in bpy.data.objects if o not in before]:
        bpy.data.objects.remove(added)  # (batch_remove leaves them in the view layer's selection)
    return facts


def scenario_asset(work: str, env: dict) -> dict:
    ext = blender_env.install_and_enable(env["zip"])
    blender_env.configure(sys.executable, env["model"])
    flamingo = os.path.join(env["examples"], "flamingo.png")
    generate = bpy.ops.image_to_3d.generate
    facts = {"baseline": snapshot(), "default_preset": bpy.context.scene.image_to_3d.preset,
             "panel": panel_drawn(ext), "resolved": resolved_presets(ext)}

    # bad values and a bake that cannot be done: a sentence each, nothing made
    facts["bad_faces"] = error_of(lambda: generate(filepath=flamingo, resolution=RESOLUTION, max_faces=2))
    facts["bad_texture"] = error_of(lambda: generate(filepath=flamingo, resolution=RESOLUTION, texture_size=50))
    # beyond the panel's limits too: an operator call is checked, never clamped
    facts["big_texture"] = error_of(lambda: generate(filepath=flamingo, resolution=RESOLUTION, texture_size=9000))
    facts["negative_smoothing"] = error_of(lambda: generate(filepath=flamingo, resolution=RESOLUTION,
                                                            smooth_iterations=-1))
    facts["failed_bake"] = error_of(lambda: generate(filepath=flamingo, resolution=RESOLUTION, preset="CUSTOM",
                                                     texture_size=64, max_faces=0, keep_floaters=True))
    facts["after_failures"] = snapshot()
    facts["cancelled"] = cancelled_bake(ext, flamingo)
    facts["after_cancel"] = snapshot()
    facts["failed_build"] = failing_build(ext, finished_job(ext, flamingo))
    facts["after_failed_build"] = snapshot()

    # the Game Asset preset, with a smaller budget given to the operator (which wins)
    bpy.ops.ed.undo_push(message="before generate")
    facts["before_generate"] = snapshot()
    facts["result"] = list(generate("EXEC_DEFAULT", True, filepath=flamingo, resolution=RESOLUTION,
                                    preset="GAME_ASSET", max_faces=1500, texture_size=256))
    obj = bpy.context.view_layer.objects.active
    facts["object"] = {"name": obj.name, **material_facts(obj), "settings": obj["image_to_3d_settings"].to_dict()}
    facts["status"] = ext.blender.job_state.STATUS.last_result
    arrays = textured_arrays(obj)
    facts["after_generate"] = snapshot()
    bpy.ops.ed.undo()
    facts["after_undo"] = snapshot()
    bpy.ops.ed.redo()
    obj = bpy.data.objects[facts["object"]["name"]]

    # the .blend keeps the textures when it moves: they are packed
    first, moved = os.path.join(work, "first", "scene.blend"), os.path.join(work, "moved", "scene.blend")
    os.makedirs(os.path.dirname(first))
    os.makedirs(os.path.dirname(moved))
    bpy.ops.wm.save_as_mainfile(filepath=first)
    shutil.move(os.path.dirname(first), os.path.join(work, "gone"))
    shutil.move(os.path.join(work, "gone", "scene.blend"), moved)
    shutil.rmtree(os.path.join(work, "gone"))
    ext.blender.worker_session.close()
    bpy.ops.wm.open_mainfile(filepath=moved)
    obj = bpy.data.objects[facts["object"]["name"]]
    reopened = textured_arrays(obj)
    facts["reopened"] = material_facts(obj)
    facts["reopened_same_pixels"] = all(np.array_equal(reopened[k], arrays[k]) for k in ("base_color", "normal_map"))

    # every export format, re-imported by Blender
    exports = os.path.join(work, "exports")
    facts["exports"], facts["reimported"] = {}, {}
    for fmt in FORMATS:
        path = ext.blender.exporters.export_object(bpy.context, obj, exports, fmt)
        facts["exports"][fmt] = os.path.basename(path)
        facts["reimported"][fmt] = reimported(path, fmt)
    facts["export_files"] = sorted(os.listdir(exports))
    # and the CLI's own files (backend/mesh/export.py), written by the pytest side
    facts["cli_reimported"] = {fmt: reimported(os.path.join(env["cli_exports"], f"flamingo.{fmt.lower()}"), fmt)
                               for fmt in ("GLB", "OBJ")}

    # a batch with custom options, exported as OBJ
    folder = os.path.join(work, "batch_in")
    os.makedirs(folder)
    for name in ("chair.png", "robot.png"):
        shutil.copy(os.path.join(env["examples"], name), folder)
    blender_env.configure(sys.executable, env["model"])
    bpy.ops.image_to_3d.batch(directory=folder, resolution=RESOLUTION, preset="CUSTOM", max_faces=800,
                              texture_size=128, export_dir=os.path.join(work, "batch_out"), export_format="OBJ")
    run = ext.blender.job_state.STATUS.last_batch
    facts["batch"] = {"succeeded": [name for _, name in run.succeeded], "failed": run.failed,
                      "objects": {name: material_facts(bpy.data.objects[name]) for _, name in run.succeeded},
                      "files": sorted(os.listdir(os.path.join(work, "batch_out")))}
    ext.blender.worker_session.close()
    np.savez(os.path.join(work, "asset.npz"), **arrays)
    return facts


if __name__ == "__main__":
    scenarios.main(globals())
