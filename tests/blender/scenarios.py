"""Scenarios that run inside real Blender (the bpy wheel), one process each.

    python tests/blender/scenarios.py NAME WORK_DIR

Each writes what it saw to WORK_DIR/NAME.json (and arrays to NAME.npz); the pytest side
(test_blender_extension.py) makes the assertions, so a failure shows the numbers.
Settings come from the environment: I3D_ZIP (the built extension), I3D_MODEL (the tiny
checkpoint), I3D_EXAMPLES (example images).
"""

import json
import os
import shutil
import sys
import time

if __name__ == "__main__" and sys.argv[1] in ("generate", "server"):
    sys.modules["torch"] = None  # the Blender side must work without torch

import bpy
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_env
from scene_facts import (  # noqa: F401 - the other scenario modules take these from here too
    DrawnPreferences,
    LayoutRecorder,
    StubOperator,
    dead_pid,
    error_of,
    mesh_arrays,
    object_facts,
    option_facts,
    process_alive,
    snapshot,
)


def scenario_generate(work: str, env: dict) -> dict:
    ext = blender_env.install_and_enable(env["zip"])
    blender_env.configure(sys.executable, env["model"])
    blender_env.raw_surface()
    facts = {"baseline": snapshot()}
    prefs = bpy.context.preferences.addons[blender_env.MODULE].preferences
    facts["readiness"] = {"ready": ext.blender.worker_session.readiness(prefs)}
    prefs.model_path = os.path.join(work, "no-model")
    facts["readiness"]["no_model"] = ext.blender.worker_session.readiness(prefs)
    prefs.python_path = os.path.join(work, "no-python")
    facts["readiness"]["no_python"] = ext.blender.worker_session.readiness(prefs)
    blender_env.configure(sys.executable, env["model"])
    flamingo = os.path.join(env["examples"], "flamingo.png")
    drawn = DrawnPreferences(prefs)
    type(prefs).draw(drawn, bpy.context)
    facts["preferences_drawn"] = drawn.layout.calls
    facts["options"] = option_facts(ext)

    # A failed job: a file that is no image.
    broken = os.path.join(work, "broken.png")
    with open(broken, "wb") as handle:
        handle.write(b"this is not a png")
    try:
        bpy.ops.image_to_3d.generate(filepath=broken, resolution=32)
        facts["failed_error"] = None
    except RuntimeError as error:
        facts["failed_error"] = str(error)
    facts["after_failure"] = snapshot()
    facts["status_error"] = ext.blender.job_state.STATUS.last_error

    # A cancelled job, through the same Job object the modal operator drives.
    options = ext.blender.runs.RunOptions(ext.backend.bridge.settings.GenerateSettings(resolution=256))
    job = ext.blender.runs.GenerateRun(ext.blender.image_source.from_file(flamingo), options).start()
    client = job.client
    seen = []
    while not any(e.kind == "progress" for e in seen):
        seen += client.poll()
        time.sleep(0.01)
    job.cancel()
    end = None
    while end is None:
        for event in client.poll():
            if event.job_id == job.job_id and event.kind in ("result", "error", "cancelled"):
                end = event.kind
        time.sleep(0.01)
    facts["cancel_end_event"] = end
    facts["after_cancel"] = snapshot()

    # The real thing, undoable as from the UI (Python calls push undo only when asked).
    bpy.context.scene.cursor.location = (1.0, 2.0, 3.0)
    bpy.ops.ed.undo_push(message="before generate")
    before = snapshot()
    result = bpy.ops.image_to_3d.generate("EXEC_DEFAULT", True, filepath=flamingo, resolution=32,
                                          rest_on_cursor=True, shading="SMOOTH")
    obj = bpy.context.view_layer.objects.active
    facts["result"] = list(result)
    facts["object"] = object_facts(obj)
    facts["cursor"] = list(bpy.context.scene.cursor.location)
    facts["active_collection"] = bpy.context.collection.name
    model_input = bpy.data.images[f"{obj.name} (model input)"]
    shown = np.empty(len(model_input.pixels), dtype=np.float32)
    model_input.pixels.foreach_get(shown)
    width, height = model_input.size
    shown = np.rint(shown.reshape(height, width, 4)[::-1, :, :3] * 255).astype(np.uint8)
    np.savez(os.path.join(work, "generate.npz"), model_input=shown, **mesh_arrays(obj))
    facts["after_generate"] = snapshot()
    bpy.ops.ed.undo()
    facts["before_generate"] = before
    facts["after_undo"] = snapshot()

    # Blender images as sources: file-backed, packed, generated, Render Result.
    image = bpy.data.images.load(flamingo)
    np.save(os.path.join(work, "file_pixels.npy"), ext.blender.image_source.image_pixels(image))
    facts["file_input_kind"] = "path" if ext.blender.image_source.from_image(image).image_path else "pixels"
    image.pack()
    packed = ext.blender.image_source.from_image(image)
    facts["packed_input_kind"] = "path" if packed.image_path else "pixels"
    bpy.context.scene.cursor.location = (0.0, 0.0, 0.0)
    bpy.ops.image_to_3d.generate(image=image.name, resolution=32, rest_on_cursor=False, shading="FLAT")
    obj = bpy.context.view_layer.objects.active
    facts["packed_object"] = object_facts(obj)
    np.savez(os.path.join(work, "packed.npz"), **mesh_arrays(obj))

    generated = bpy.data.images.new("gradient", 4, 2, alpha=True)
    pixels = np.zeros((2, 4, 4), dtype=np.float32)
    pixels[0, :, 0] = 1.0  # Blender's first row (the bottom) red
    pixels[1, :, 2] = 1.0  # top row blue
    pixels[..., 3] = 0.5
    generated.pixels.foreach_set(pixels.ravel())
    facts["generated_pixels"] = ext.blender.image_source.from_image(generated).image_pixels.tolist()

    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.device = "CPU"
    scene.render.resolution_x = scene.render.resolution_y = 32
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    bpy.ops.render.render()
    render = ext.blender.image_source.from_image(bpy.data.images["Render Result"]).image_pixels
    facts["render_shape"] = list(render.shape)
    facts["render_corner_alpha"] = int(render[0, 0, 3])
    facts["render_centre_alpha"] = int(render[16, 16, 3])

    facts["torch_modules"] = sorted(name for name, mod in sys.modules.items()
                                    if name.split(".")[0] == "torch" and mod is not None)

    # A batch cancelled while its second image runs: that image finishes, the third never starts.
    folder = os.path.join(work, "batch_in")
    os.makedirs(folder)
    for name in ("chair.png", "flamingo.png", "horse.png"):
        shutil.copy(os.path.join(env["examples"], name), folder)
    run = ext.blender.runs.BatchRun(bpy.context, folder, ext.blender.runs.RunOptions(ext.backend.bridge.settings.GenerateSettings(resolution=32)))
    while not (len(run.succeeded) == 1 and run.current is not None):
        run.step(bpy.context)
        time.sleep(0.01)
    run.cancel()
    while not run.step(bpy.context):
        time.sleep(0.01)
    facts["cancelled_batch"] = {
        "succeeded": [os.path.basename(p) for p, _ in run.succeeded],
        "left": [os.path.basename(p) for p in run.queue],
        "objects": sorted(o.name for o in run.collection.objects),
        "summary": run.summary(),
        "log": open(run.write_log()).read(),
    }

    # What registration put in place, and what disabling takes away (the worker included).
    prefs = bpy.context.preferences.addons[blender_env.MODULE].preferences
    facts["preference_properties"] = sorted(p.identifier for p in prefs.bl_rna.properties
                                            if p.identifier not in ("rna_type", "bl_idname"))
    facts["registered"] = {name: hasattr(bpy.types, name) for name in REGISTERED}
    facts["worker_alive_before_disable"] = ext.blender.worker_session.is_running()
    pid = ext.blender.worker_session.client().pid
    bpy.ops.preferences.addon_disable(module=blender_env.MODULE)
    facts["registered_after_disable"] = {name: hasattr(bpy.types, name) for name in REGISTERED}
    facts["worker_alive_after_disable"] = pid is not None and process_alive(pid)
    return facts


REGISTERED = ("IMAGE_TO_3D_OT_generate", "IMAGE_TO_3D_OT_batch", "IMAGE_TO_3D_OT_cancel",
              "VIEW3D_PT_image_to_3d", "VIEW3D_PT_image_to_3d_batch", "IMAGE_PT_image_to_3d",
              "IMAGE_PT_image_to_3d_batch")


def scenario_reopen(work: str, env: dict) -> dict:
    """Open the headless script's .blend, re-import an export, re-run the batch (skips)."""
    ext = blender_env.install_and_enable(env["zip"])
    bpy.ops.wm.open_mainfile(filepath=env["blend"])
    blender_env.raw_surface()  # as the headless run that made the .blend
    made = [o for o in bpy.data.objects if "image_to_3d_source" in o]
    facts = {
        "objects": sorted(o.name for o in made),
        "sources": sorted(os.path.basename(o["image_to_3d_source"]) for o in made),
        "collections": sorted({c.name for o in made for c in o.users_collection}),
        "vertex_counts": {o.name: len(o.data.vertices) for o in made},
        "face_counts": {o.name: len(o.data.polygons) for o in made},
        "locations": {o.name: list(o.location) for o in made},
    }
    imported = {}
    for name in sorted(os.listdir(env["export_dir"])):
        if name.endswith(".glb"):
            before = set(bpy.data.objects)
            bpy.ops.import_scene.gltf(filepath=os.path.join(env["export_dir"], name))
            new = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
            imported[name] = {"faces": sum(len(o.data.polygons) for o in new),
                              "color_attributes": [a.name for o in new for a in o.data.color_attributes]}
    facts["imported"] = imported
    for obj in [o for o in bpy.data.objects if o not in made]:
        bpy.data.objects.remove(obj)

    blender_env.configure(sys.executable, env["model"])
    bpy.ops.image_to_3d.batch(directory=env["input_dir"], resolution=32)
    run = ext.blender.job_state.STATUS.last_batch
    facts["rerun"] = {"skipped": [os.path.basename(p) for p in run.skipped],
                      "succeeded": len(run.succeeded), "failed": [os.path.basename(p) for p, _ in run.failed]}
    ext.blender.worker_session.close()
    return facts


def scenario_hardening(work: str, env: dict) -> dict:
    """Inputs that must not persist, missing images, EXR sources, link loops, release,
    colliding export names, interrupted exports, and what a save keeps."""
    ext = blender_env.install_and_enable(env["zip"])
    blender_env.configure(sys.executable, env["model"])
    blender_env.raw_surface()
    examples = env["examples"]
    flamingo, chair = os.path.join(examples, "flamingo.png"), os.path.join(examples, "chair.png")
    facts = {}

    bpy.ops.image_to_3d.generate(filepath=flamingo, resolution=32)
    chair_image = bpy.data.images.load(chair)
    bpy.ops.image_to_3d.generate(image=chair_image.name, resolution=32)  # no filepath this time
    facts["second_source"] = bpy.context.view_layer.objects.active.get("image_to_3d_source")
    facts["missing_image_error"] = error_of(lambda: bpy.ops.image_to_3d.generate(image="No Such Image", resolution=32))

    source = bpy.data.images.load(flamingo)
    pixels = np.empty(len(source.pixels), dtype=np.float32)
    source.pixels.foreach_get(pixels)
    exr = bpy.data.images.new("flamingo float", *source.size, alpha=True, float_buffer=True)
    exr.pixels.foreach_set(pixels)
    exr.filepath_raw, exr.file_format = os.path.join(work, "flamingo.exr"), "OPEN_EXR"
    exr.save()
    exr_image = bpy.data.images.load(os.path.join(work, "flamingo.exr"))
    facts["exr_input_kind"] = "path" if ext.blender.image_source.from_image(exr_image).image_path else "pixels"
    facts["exr_result"] = list(bpy.ops.image_to_3d.generate(image=exr_image.name, resolution=32))

    loop = os.path.join(work, "loop.png")
    os.symlink(loop, loop)
    facts["loop_error"] = error_of(lambda: bpy.ops.image_to_3d.generate(filepath=loop, resolution=32))

    facts["status_loaded"] = ext.blender.worker_session.model_status()
    facts["release"] = list(bpy.ops.image_to_3d.release_model())
    facts["status_released"] = ext.blender.worker_session.model_status()
    facts["running_after_release"] = ext.blender.worker_session.is_running()

    # Two images whose object names clean to the same file name, and a killed run's staging folder.
    folder, exports = os.path.join(work, "names"), os.path.join(work, "exports")
    os.makedirs(folder)
    os.makedirs(exports)
    for name in ("a b.png", "a_b.png"):
        shutil.copy(flamingo, os.path.join(folder, name))
    stale = os.path.join(exports, f".image_to_3d-tmp-{dead_pid()}-export")
    os.makedirs(stale)
    open(os.path.join(stale, "half.obj"), "w").close()
    an_hour_ago = time.time() - 3600  # stale: unlocked, and nothing written for longer than any export takes
    os.utime(stale, (an_hour_ago, an_hour_ago))
    bpy.ops.image_to_3d.batch(directory=folder, export_dir=exports, export_format="OBJ", resolution=32)
    facts["exports"] = sorted(os.listdir(exports))

    # An exporter that dies halfway: nothing appears under the final name.
    obj = bpy.context.view_layer.objects.active
    exporters = ext.blender.exporters
    real = exporters._run_exporter

    def dies_halfway(context, obj, op_path, wanted, path, fmt):
        with open(path, "w") as handle:
            handle.write("v 0 0 0\n")
        raise RuntimeError("exporter crashed")

    exporters._run_exporter = dies_halfway
    try:
        facts["failed_export_error"] = error_of(lambda: exporters.export_object(bpy.context, obj, exports, "OBJ"))
    finally:
        exporters._run_exporter = real
    facts["exports_after_failure"] = sorted(os.listdir(exports))

    # The model-input images survive a save and a reopen.
    inputs = sorted(i.name for i in bpy.data.images if i.name.endswith("(model input)"))
    saved = os.path.join(work, "saved.blend")
    bpy.ops.wm.save_as_mainfile(filepath=saved)
    ext.blender.worker_session.close()
    bpy.ops.wm.open_mainfile(filepath=saved)
    facts["model_inputs"] = [inputs, sorted(i.name for i in bpy.data.images if i.name.endswith("(model input)"))]
    return facts


def scenario_server(work: str, env: dict) -> dict:
    """Run On: Server. The same operators against a model server (I3D_SERVER_URL, the
    token in I3D_TOKEN_FILE): an object, a failure, a wrong token, a batch, a save."""
    ext = blender_env.install_and_enable(env["zip"])
    blender_env.raw_surface()  # as the local scenario's object, which it is compared with
    prefs = bpy.context.preferences.addons[blender_env.MODULE].preferences
    token = open(env["token_file"]).read().strip()
    facts = {"readiness": {"no_url": None}}
    prefs.run_on = "SERVER"
    facts["readiness"]["no_url"] = ext.blender.worker_session.readiness(prefs)
    prefs.server_url, prefs.server_token = env["server_url"], token
    bpy.context.preferences.system.use_online_access = False
    facts["readiness"]["offline"] = ext.blender.worker_session.readiness(prefs)
    bpy.context.preferences.system.use_online_access = True
    facts["readiness"]["ready"] = ext.blender.worker_session.readiness(prefs)
    facts["model_status"] = ext.blender.worker_session.model_status()
    flamingo = os.path.join(env["examples"], "flamingo.png")

    # The same call as the local scenario's object (cursor, options), for an exact comparison.
    bpy.context.scene.cursor.location = (1.0, 2.0, 3.0)
    result = bpy.ops.image_to_3d.generate(filepath=flamingo, resolution=32, rest_on_cursor=True, shading="SMOOTH")
    obj = bpy.context.view_layer.objects.active
    facts["result"] = list(result)
    facts["object"] = object_facts(obj)
    facts["client"] = type(ext.blender.worker_session.client()).__name__
    np.savez(os.path.join(work, "server.npz"), **mesh_arrays(obj))

    broken = os.path.join(work, "broken.png")
    with open(broken, "wb") as handle:
        handle.write(b"this is not a png")
    before = snapshot()
    facts["failed_error"] = error_of(lambda: bpy.ops.image_to_3d.generate(filepath=broken, resolution=32))
    facts["unchanged_after_failure"] = snapshot() == before

    prefs.server_token = "not-the-servers-token-at-all"
    facts["wrong_token_error"] = error_of(lambda: bpy.ops.image_to_3d.generate(filepath=flamingo, resolution=32))
    prefs.server_token = token

    folder = os.path.join(work, "batch_in")
    os.makedirs(folder)
    for name in ("chair.png", "horse.png"):
        shutil.copy(os.path.join(env["examples"], name), folder)
    bpy.ops.image_to_3d.batch(directory=folder, resolution=32)
    run = ext.blender.job_state.STATUS.last_batch
    facts["batch"] = {"succeeded": [os.path.basename(p) for p, _ in run.succeeded], "failed": run.failed,
                      "log": open(run.log_path).read()}
    facts["torch_modules"] = sorted(name for name, mod in sys.modules.items()
                                    if name.split(".")[0] == "torch" and mod is not None)
    saved = os.path.join(work, "server.blend")
    bpy.ops.wm.save_as_mainfile(filepath=saved)
    facts["saved"] = saved
    return facts


def main(scenarios: dict | None = None):
    """Run the scenario named on the command line from `scenarios` (default: this file's)."""
    name, work = sys.argv[1], sys.argv[2]
    env = blender_env.main_args()
    facts = (scenarios or globals())[f"scenario_{name}"](work, env)
    with open(os.path.join(work, f"{name}.json"), "w") as handle:
        json.dump(facts, handle, indent=1, default=str)
    sys.stdout.flush()
    # The bpy 4.2 wheel can crash in interpreter teardown after glTF I/O; the work is saved.
    os._exit(0)


if __name__ == "__main__":
    main()
