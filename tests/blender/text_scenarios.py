"""Text to 3D (Shap-E) inside real Blender (the bpy wheel): the panel's Text source and model
choice, the operator with a prompt, an image with Shap-E, errors, cancel, a prompts batch.

    python tests/blender/text_scenarios.py text WORK_DIR

Writes WORK_DIR/text.json and text.npz; test_blender_text.py makes the assertions.
Settings from the environment: I3D_ZIP, I3D_MODEL (the tiny TripoSR checkpoint),
I3D_SHAP_E_TEXT and I3D_SHAP_E_IMAGE (tiny Shap-E folders), I3D_EXAMPLES.
"""

import os
import sys
import time

if __name__ == "__main__":
    sys.modules["torch"] = None  # the Blender side must work without torch

import bpy
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_env
import scenarios
from scenarios import LayoutRecorder, error_of, mesh_arrays, snapshot

FAST = {"steps": 6, "shap_e_resolution": 40, "seed": 3}
CHAIR = "a red wooden chair"


class TextRecorder(LayoutRecorder):
    """A recording layout that also keeps the text= of each call (labels)."""

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append([name, [str(a) for a in args if isinstance(a, str)], kwargs.get("text")])
            return self
        return record


class DrawnPanel:
    """A panel's draw() with a recording layout."""

    def __init__(self):
        self.layout = TextRecorder()


def drawn_props(ext, source: str, family: str) -> list:
    settings = bpy.context.scene.image_to_3d
    settings.source, settings.family, settings.use_defaults = source, family, False
    drawn = DrawnPanel()
    ext.panels.sidebar.VIEW3D_PT_image_to_3d.draw(drawn, bpy.context)
    return [[name, args, text] for name, args, text in drawn.layout.calls if name in ("prop", "label")]


def shap_e_facts(obj) -> dict:
    return {**scenarios.object_facts(obj), "prompt": obj.get("image_to_3d_prompt"), "seed": obj.get("image_to_3d_seed")}


def scenario_text(work: str, env: dict) -> dict:
    ext = blender_env.install_and_enable(env["zip"])
    prefs = blender_env.configure(sys.executable, env["model"])
    blender_env.raw_surface()  # the backend's raw mesh, to compare; one job below goes through the mesh stage
    prefs.shap_e_model_path, prefs.shap_e_image_model_path = env["shap_e_text"], env["shap_e_image"]
    session = ext.blender.worker_session
    facts = {"baseline": snapshot(), "readiness": {"text": session.readiness(prefs, "SHAP_E", "text"),
                                                   "image": session.readiness(prefs, "SHAP_E", "image")}}
    prefs.shap_e_model_path = env["model"]  # a TripoSR folder where Shap-E's belongs
    facts["readiness"]["wrong_family"] = session.readiness(prefs, "SHAP_E", "text")
    prefs.shap_e_model_path = ""
    facts["readiness"]["unset"] = session.readiness(prefs, "SHAP_E", "text")
    facts["missing_model_error"] = error_of(lambda: bpy.ops.image_to_3d.generate(prompt=CHAIR, **FAST))
    prefs.shap_e_model_path = env["shap_e_text"]
    drawn = scenarios.DrawnPreferences(prefs)
    type(prefs).draw(drawn, bpy.context)
    facts["preferences_drawn"] = drawn.layout.calls
    facts["panel"] = {"text": drawn_props(ext, "TEXT", "TRIPOSR"), "shap_e_image": drawn_props(ext, "FILE", "SHAP_E"),
                      "triposr": drawn_props(ext, "FILE", "TRIPOSR")}

    # The operator with a prompt: undoable, the prompt and seed on the object.
    bpy.context.scene.cursor.location = (0.0, 0.0, 0.0)
    bpy.ops.ed.undo_push(message="before text")
    before = snapshot()
    facts["result"] = list(bpy.ops.image_to_3d.generate("EXEC_DEFAULT", True, prompt=CHAIR, rest_on_cursor=False, **FAST))
    obj = bpy.context.view_layer.objects.active
    facts["object"] = shap_e_facts(obj)
    facts["status"] = ext.blender.job_state.STATUS.last_result
    arrays = {f"first_{key}": value for key, value in mesh_arrays(obj).items()}
    facts["after_generate"] = snapshot()
    bpy.ops.ed.undo()
    facts["before_generate"], facts["after_undo"] = before, snapshot()
    bpy.ops.image_to_3d.generate(prompt=CHAIR, rest_on_cursor=False, **FAST)  # same seed, same mesh
    arrays.update({f"again_{key}": value for key, value in mesh_arrays(bpy.context.view_layer.objects.active).items()})

    # The panel's Text source: its prompt, and Shap-E although TripoSR is chosen for images.
    panel = bpy.context.scene.image_to_3d
    panel.source, panel.prompt, panel.family, panel.use_defaults = "TEXT", "a blue teapot", "TRIPOSR", False
    panel.steps, panel.shap_e_resolution = 4, 32
    bpy.ops.image_to_3d.generate()
    facts["panel_object"] = shap_e_facts(bpy.context.view_layer.objects.active)
    panel.prompt = "   "
    facts["empty_prompt_error"] = error_of(lambda: bpy.ops.image_to_3d.generate())
    panel.source = "IMAGE"

    # Errors leave the scene as it was.
    unchanged = snapshot()
    facts["triposr_prompt_error"] = error_of(lambda: bpy.ops.image_to_3d.generate(prompt=CHAIR, family="TRIPOSR"))
    prefs.shap_e_model_path = env["shap_e_image"]  # the image model where the text model belongs
    facts["wrong_task_error"] = error_of(lambda: bpy.ops.image_to_3d.generate(prompt=CHAIR, **FAST))
    prefs.shap_e_model_path = env["shap_e_text"]
    facts["unchanged_after_errors"] = snapshot() == unchanged

    # An image with Shap-E's image model: the picture it saw is kept as the model input.
    flamingo = os.path.join(env["examples"], "flamingo.png")
    bpy.ops.image_to_3d.generate(filepath=flamingo, family="SHAP_E", steps=4, shap_e_resolution=32,
                                 preset="CUSTOM", max_faces=1000, texture_size=256)  # through the mesh stage
    made = bpy.context.view_layer.objects.active
    facts["image_object"] = {**shap_e_facts(made), "faces": len(made.data.polygons),
                             "uv_maps": [uv.name for uv in made.data.uv_layers]}

    # Cancel while the diffusion runs: nothing is built.
    options = ext.blender.runs.RunOptions(ext.backend.bridge.settings.GenerateSettings(family="SHAP_E", steps=500))
    before_cancel = snapshot()
    job = ext.blender.runs.GenerateRun(ext.blender.prompt_source.from_text(CHAIR), options).start()
    seen = []
    while not any(e.kind == "progress" and e.stage == "diffusion" and (e.fraction or 0) > 0 for e in seen):
        seen += [e for e in job.client.poll() if e.job_id == job.job_id]
        time.sleep(0.01)
    job.cancel()
    ended = None
    while ended is None:
        ended = next((e.kind for e in job.client.poll() if e.job_id == job.job_id
                      and e.kind in ("result", "error", "cancelled")), None)
        time.sleep(0.01)
    stage = [e.stage for e in seen if e.kind == "progress"][-1]
    facts["cancel"] = {"end": ended, "stage": stage, "unchanged": snapshot() == before_cancel}

    # A prompts file with one bad line: the others are made, the bad one is reported.
    prompts = os.path.join(work, "prompts.txt")
    with open(prompts, "wb") as handle:
        handle.write(b"a red wooden chair\n\xff\xfe not text\n# a comment\na blue teapot\n")
    bpy.ops.image_to_3d.batch(prompts_file=prompts, rest_on_cursor=False, **FAST)
    run = ext.blender.job_state.STATUS.last_batch
    facts["batch"] = {"succeeded": [prompt for prompt, _ in run.succeeded], "failed": run.failed,
                      "objects": sorted(o.name for o in run.collection.objects), "collection": run.collection.name,
                      "summary": run.summary(), "log": open(run.write_log()).read(),
                      "locations": sorted(tuple(o.location) for o in run.collection.objects)}
    facts["torch_modules"] = sorted(name for name, mod in sys.modules.items()
                                    if name.split(".")[0] == "torch" and mod is not None)
    np.savez(os.path.join(work, "text.npz"), **arrays)
    session.close()
    return facts


if __name__ == "__main__":
    scenarios.main(globals())
