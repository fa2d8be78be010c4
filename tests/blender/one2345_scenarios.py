"""One-2-3-45 inside real Blender (the bpy wheel): in the model choice, its three model
folders in the preferences, its options and its CPU note in the panel, Generate through
the local worker (the object and, kept beside it as its model input, the views' contact
sheet).

    python tests/blender/one2345_scenarios.py one2345 WORK_DIR

Writes WORK_DIR/one2345.json and one2345.npz; test_blender_one2345.py makes the
assertions. Settings from the environment: I3D_ZIP, I3D_MODEL (TripoSR's tiny folder),
I3D_ONE2345_MODELS (the three tiny folders), I3D_PICTURE.
"""

import os
import sys

if __name__ == "__main__":
    sys.modules["torch"] = None  # the Blender side must work without torch

import bpy
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_env
import scenarios
from scenarios import mesh_arrays, snapshot
from text_scenarios import drawn_props

# the views as the backend tests run them (tests/conftest.py one2345_settings)
JOB = {"views_estimate_elevation": False, "views_elevation": 20.0, "views_steps": 3, "views_seed": 5,
       "one2345_resolution": 32}
PREFERENCES = ("zero123_model_path", "loftr_model_path", "sparseneus_model_path")


def scenario_one2345(work: str, env: dict) -> dict:
    ext = blender_env.install_and_enable(env["zip"])
    prefs = blender_env.configure(sys.executable, env["model"])  # the CPU
    blender_env.raw_surface()
    session = ext.blender.worker_session
    settings = bpy.context.scene.image_to_3d
    facts = {"families": [item.identifier for item in settings.bl_rna.properties["family"].enum_items],
             "preferences": [hasattr(prefs, name) for name in PREFERENCES],
             "unset_readiness": session.readiness(prefs, "ONE2345", "image")}
    session.set_model(prefs, "ONE2345", "image", env["one2345_models"])
    facts["folders"] = [getattr(prefs, name) for name in PREFERENCES]
    facts["readiness"] = session.readiness(prefs, "ONE2345", "image")
    facts["panel"] = drawn_props(ext, "FILE", "ONE2345")

    before = snapshot()
    facts["result"] = list(bpy.ops.image_to_3d.generate("EXEC_DEFAULT", True, filepath=env["picture"], family="ONE2345",
                                                        rest_on_cursor=False, **JOB))
    made = bpy.context.view_layer.objects.active
    status = ext.blender.job_state.STATUS
    shown = bpy.data.images.get(status.last_input_image)
    facts["object"] = {**scenarios.object_facts(made), "seed": made.get("image_to_3d_seed"),
                       "new_images": sorted(i.name for i in bpy.data.images if i.name not in before["images"]),
                       "model_input": status.last_input_image,
                       "model_input_size": list(shown.size) if shown is not None else None}
    np.savez(os.path.join(work, "one2345.npz"), **{k: v for k, v in mesh_arrays(made).items()})
    session.close()
    return facts


if __name__ == "__main__":
    scenarios.main(globals())
