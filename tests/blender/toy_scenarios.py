"""The toy sphere family (tests/plugins/toy_sphere), plugged in through the environment,
inside real Blender (the bpy wheel): in the model choice, its options in the panel, its
model folder in the preferences, and the Generate operator through the mesh stage.

    python tests/blender/toy_scenarios.py toy WORK_DIR

Writes WORK_DIR/toy.json; test_blender_toy_family.py makes the assertions. Settings from
the environment: I3D_ZIP, I3D_TOY_MODEL, I3D_PICTURE, and IMAGE_TO_3D_FAMILIES /
IMAGE_TO_3D_FAMILY_PATH, which plug the family in (for the worker too).
"""

import os
import sys

if __name__ == "__main__":
    sys.modules["torch"] = None  # the Blender side must work without torch

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_env
import scenarios
from scenarios import error_of, snapshot
from text_scenarios import drawn_props


def scenario_toy(work: str, env: dict) -> dict:
    ext = blender_env.install_and_enable(env["zip"])
    prefs = blender_env.configure(sys.executable, env["model"])
    facts = {"families": [item.identifier for item in bpy.context.scene.image_to_3d.bl_rna.properties["family"].enum_items],
             "preference": hasattr(prefs, "toy_sphere_model_path"),
             "unset_readiness": ext.blender.worker_session.readiness(prefs, "TOY_SPHERE", "image")}
    prefs.toy_sphere_model_path = env["toy_model"]
    facts["readiness"] = ext.blender.worker_session.readiness(prefs, "TOY_SPHERE", "image")
    facts["panel"] = drawn_props(ext, "FILE", "TOY_SPHERE")
    drawn = scenarios.DrawnPreferences(prefs)
    type(prefs).draw(drawn, bpy.context)
    facts["preferences_drawn"] = drawn.layout.calls

    bpy.ops.ed.undo_push(message="before toy")
    before = snapshot()
    facts["result"] = list(bpy.ops.image_to_3d.generate("EXEC_DEFAULT", True, filepath=env["picture"], family="TOY_SPHERE",
                                                        sphere_radius=0.4, sphere_resolution=40, preset="CUSTOM",
                                                        max_faces=300, texture_size=64, rest_on_cursor=False))
    made = bpy.context.view_layer.objects.active
    facts["object"] = {**scenarios.object_facts(made), "faces": len(made.data.polygons),
                       "uv_maps": [uv.name for uv in made.data.uv_layers],
                       "images": sorted(i.name for i in bpy.data.images if i.name not in before["images"])}
    bpy.ops.ed.undo()
    facts["after_undo"], facts["before"] = snapshot(), before
    facts["wrong_folder_error"] = None
    prefs.toy_sphere_model_path = env["model"]  # a TripoSR folder where the toy's belongs
    facts["wrong_folder_error"] = error_of(lambda: bpy.ops.image_to_3d.generate(filepath=env["picture"],
                                                                                family="TOY_SPHERE"))
    ext.blender.worker_session.close()
    return facts


if __name__ == "__main__":
    scenarios.main(globals())
