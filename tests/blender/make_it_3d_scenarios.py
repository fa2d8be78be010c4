"""Make-It-3D inside real Blender (the bpy wheel): the model choice with a prompt field for an
image, its options, the job (modal-capable, cancel, progress words and previews), the
textured object with its material, the refusals.

    python tests/blender/make_it_3d_scenarios.py make_it_3d WORK_DIR

Writes WORK_DIR/make_it_3d.json; test_blender_make_it_3d.py makes the assertions.
Settings from the environment: I3D_ZIP, I3D_MODEL (the tiny TripoSR checkpoint),
I3D_M3D_MODELS (a folder holding Make-It-3D's four tiny model folders), I3D_PICTURE.
"""

import os
import sys
import time

if __name__ == "__main__":
    sys.modules["torch"] = None  # the Blender side must work without torch

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_env
import scenarios
from asset_scenarios import material_facts
from scenarios import error_of, snapshot
from text_scenarios import drawn_props

PROMPT = "a red and blue disc"
FAST = {"family": "MAKE_IT_3D", "m3d_coarse_iterations": 6, "m3d_refine_iterations": 3, "m3d_render_size": 24,
        "m3d_resolution": 32, "m3d_preview_every": 2, "preset": "CUSTOM", "max_faces": 300, "texture_size": 128,
        "m3d_seed": 4, "rest_on_cursor": False}


def follow(ext, run) -> tuple:
    """Poll a GenerateRun until it ends: (how it ended, the progress lines seen)."""
    lines, deadline = [], time.monotonic() + 300
    while not run.poll():
        assert time.monotonic() < deadline, lines[-3:]
        lines.append(run.describe())
        time.sleep(0.02)
    return ("cancelled" if isinstance(run.error, ext.backend.bridge.errors.Cancelled) else
            "error" if run.error else "result"), lines


def scenario_make_it_3d(work: str, env: dict) -> dict:
    ext = blender_env.install_and_enable(env["zip"])
    prefs = blender_env.configure(sys.executable, env["model"])
    session = ext.blender.worker_session
    facts = {"unset": session.readiness(prefs, "MAKE_IT_3D", "image")}
    session.set_model(prefs, "MAKE_IT_3D", "image", env["m3d_models"])  # each model folder to its slot
    facts["folders"] = {name: getattr(prefs, name) for name in ("sd2_model_path", "clip_model_path", "dpt_model_path")}
    facts["readiness"] = session.readiness(prefs, "MAKE_IT_3D", "image")
    prefs.model_path = env["model"]  # TripoSR's folder serves both families
    facts["families"] = [item.identifier for item in
                         bpy.context.scene.image_to_3d.bl_rna.properties["family"].enum_items]
    facts["panel"] = {"make_it_3d": drawn_props(ext, "FILE", "MAKE_IT_3D"), "triposr": drawn_props(ext, "FILE", "TRIPOSR")}
    picture = env["picture"]

    # Refusals: no prompt; a prompt with TripoSR; a CPU run that would take too long.
    unchanged = snapshot()
    panel = bpy.context.scene.image_to_3d
    panel.prompt = ""
    facts["no_prompt_error"] = error_of(lambda: bpy.ops.image_to_3d.generate(filepath=picture, **FAST))
    facts["triposr_prompt_error"] = error_of(lambda: bpy.ops.image_to_3d.generate(filepath=picture, prompt=PROMPT,
                                                                                   family="TRIPOSR"))
    facts["cpu_error"] = error_of(lambda: bpy.ops.image_to_3d.generate(filepath=picture, prompt=PROMPT,
                                                                        **{**FAST, "m3d_cpu_minutes": 0.0001}))  # Blender keeps 5 decimals
    facts["unchanged_after_errors"] = snapshot() == unchanged

    # The operator with a file and a prompt: one undo step, the textured object, its preview image.
    bpy.ops.ed.undo_push(message="before make-it-3d")
    before = snapshot()
    facts["result"] = list(bpy.ops.image_to_3d.generate("EXEC_DEFAULT", True, filepath=picture, prompt=PROMPT, **FAST))
    made = bpy.context.view_layer.objects.active
    facts["object"] = {**scenarios.object_facts(made), **material_facts(made), "prompt": made.get("image_to_3d_prompt"),
                       "seed": made.get("image_to_3d_seed")}
    preview = bpy.data.images.get(f"{made.name} (preview)")
    facts["preview_image"] = list(preview.size) if preview else None
    facts["status"] = ext.blender.job_state.STATUS.last_result
    facts["after_generate"] = snapshot()
    bpy.ops.ed.undo()
    facts["before_generate"], facts["after_undo"] = before, snapshot()

    # The panel's own prompt goes with the panel's file.
    panel = bpy.context.scene.image_to_3d  # undo replaced the scene's data
    panel.source, panel.filepath, panel.prompt, panel.family, panel.use_defaults = "FILE", picture, "a disc", \
        "MAKE_IT_3D", False
    for name, value in FAST.items():
        if name not in ("family", "rest_on_cursor"):
            setattr(panel, name, value)
    bpy.ops.image_to_3d.generate()
    facts["panel_object"] = {"prompt": bpy.context.view_layer.objects.active.get("image_to_3d_prompt")}

    # A run followed as the modal operator follows it: words and previews, then cancel.
    options = ext.blender.runs.RunOptions(ext.backend.bridge.settings.GenerateSettings(
        family="MAKE_IT_3D", m3d_coarse_iterations=6, m3d_refine_iterations=3, m3d_render_size=24, m3d_resolution=32,
        m3d_preview_every=2, max_faces=300, texture_size=128))
    source = ext.blender.image_source.from_file(picture)
    source.prompt = PROMPT
    run = ext.blender.runs.GenerateRun(source, options).start()
    ended, lines = follow(ext, run)
    facts["followed"] = {"end": ended, "lines": [line for line in lines if "loss" in line][-3:],
                         "previews": run.previews, "last_preview": [run.preview.stage, run.preview.iteration,
                                                                    list(run.preview.image.shape)]}
    long = ext.blender.runs.RunOptions(ext.backend.bridge.settings.GenerateSettings(
        family="MAKE_IT_3D", m3d_coarse_iterations=500, m3d_render_size=24, m3d_resolution=32))
    before_cancel = snapshot()
    run = ext.blender.runs.GenerateRun(source, long).start()
    deadline = time.monotonic() + 300
    while not (run.detail or "").startswith("coarse 2/500"):
        assert time.monotonic() < deadline and not run.poll()
        time.sleep(0.02)
    label = run.describe()
    run.cancel()
    ended = None
    while ended is None:  # the model process says it stopped
        ended = next((e.kind for e in run.client.poll() if e.job_id == run.job_id
                      and e.kind in ("result", "error", "cancelled")), None)
        assert time.monotonic() < deadline
        time.sleep(0.02)
    facts["cancel"] = {"end": ended, "label": label, "unchanged": snapshot() == before_cancel}
    session.close()
    return facts


if __name__ == "__main__":
    scenarios.main(globals())
