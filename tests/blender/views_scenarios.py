"""The views job inside real Blender (the bpy wheel): the views' model folders in the
preferences (from the registry), the Views panel with its readiness lines and Generate
Views button, the operator through the worker (blocking here, as in background mode),
the contact sheet as a packed image, cancel, and failures that leave nothing behind.

    python tests/blender/views_scenarios.py views WORK_DIR

Writes WORK_DIR/views.json and views.npz; test_blender_views.py makes the assertions.
Settings from the environment: I3D_ZIP, I3D_MODEL (the tiny TripoSR checkpoint),
I3D_VIEWS_MODELS (make-test-model zero123's folder), I3D_PICTURE.
"""

import os
import sys
import time
import types

if __name__ == "__main__":
    sys.modules["torch"] = None  # the Blender side must work without torch

import bpy
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_env
import scenarios
from scenarios import error_of
from text_scenarios import DrawnPanel

FAST = {"views_estimate_elevation": False, "views_elevation": 20.0, "views_steps": 3, "views_seed": 5}


def images() -> list:
    return sorted(image.name for image in bpy.data.images)


def scenario_views(work: str, env: dict) -> dict:
    ext = blender_env.install_and_enable(env["zip"])
    prefs = blender_env.configure(sys.executable, env["model"])
    views_run = ext.blender.views_run
    facts = {"preferences": [hasattr(prefs, name) for name in ("zero123_model_path", "loftr_model_path")]}
    facts["unset_error"] = error_of(lambda: bpy.ops.image_to_3d.generate_views(filepath=env["picture"], **FAST))
    prefs.zero123_model_path = os.path.join(env["views_models"], "zero123_xl")
    facts["readiness_without_loftr"] = views_run.readiness_lines(prefs, views_run.ViewsSettings(**FAST))
    facts["readiness_estimating_without_loftr"] = views_run.readiness_lines(prefs, views_run.ViewsSettings())
    facts["estimate_error"] = error_of(lambda: bpy.ops.image_to_3d.generate_views(filepath=env["picture"]))
    prefs.loftr_model_path = os.path.join(env["views_models"], "loftr")
    facts["readiness"] = views_run.readiness_lines(prefs, views_run.ViewsSettings())
    drawn = scenarios.DrawnPreferences(prefs)
    type(prefs).draw(drawn, bpy.context)
    facts["preferences_drawn"] = drawn.layout.calls

    settings = bpy.context.scene.image_to_3d
    settings.source, settings.filepath = "FILE", env["picture"]
    panel = DrawnPanel()
    ext.panels.sidebar.VIEW3D_PT_image_to_3d_views.draw(panel, bpy.context)
    facts["panel"] = panel.layout.calls
    facts["panel_polls"] = {source: (setattr(settings, "source", source),
                                     ext.panels.sidebar.VIEW3D_PT_image_to_3d_views.poll(bpy.context))[1]
                            for source in ("IMAGE", "FILE", "TEXT")}
    settings.source = "FILE"

    before = images()
    facts["result"] = list(bpy.ops.image_to_3d.generate_views("EXEC_DEFAULT", filepath=env["picture"], **FAST))
    status = ext.blender.job_state.STATUS
    facts["status"] = {"last_result": status.last_result, "last_views_image": status.last_views_image,
                       "running": status.running}
    sheet = bpy.data.images[status.last_views_image]
    width, height = sheet.size
    pixels = np.empty(width * height * 4, np.float32)
    sheet.pixels.foreach_get(pixels)
    facts["sheet"] = {"new_images": sorted(set(images()) - set(before)), "size": [width, height],
                      "packed": sheet.packed_file is not None, "fake_user": sheet.use_fake_user,
                      "elevation": sheet.get("image_to_3d_views_elevation"), "seed": sheet.get("image_to_3d_views_seed")}
    sheet_pixels = np.rint(pixels.reshape(height, width, 4)[::-1, :, :3] * 255).astype(np.uint8)

    # the panel's options when the operator is given none; the same name replaces the sheet
    for name, value in FAST.items():
        setattr(settings, name, value)
    settings.views_seed = 6
    bpy.ops.image_to_3d.generate_views(filepath=env["picture"])
    facts["again"] = {"images": images(), "seed": bpy.data.images[status.last_views_image].get("image_to_3d_views_seed")}

    # the sheet goes to the Image Editors of the screen (a background session has no window: the screen is handed in)
    screen = bpy.data.screens.get("Layout") or bpy.data.screens[0]
    area = screen.areas[0]
    area.type = "IMAGE_EDITOR"
    shown = views_run.show_contact_sheet(types.SimpleNamespace(screen=screen), "shown", types.SimpleNamespace(
        contact_sheet=np.full((16, 8, 3), 7, np.uint8), elevation=10.0, polar_estimated=True, poses={"seed": 1}))
    facts["editor"] = {"shows": area.spaces.active.image.name, "made": shown.name, "size": list(shown.size)}
    bpy.data.images.remove(shown)

    # cancel while the views are drawn: within a UNet step, and no image is made
    before_cancel = images()
    run = views_run.ViewsRun(ext.blender.image_source.from_file(env["picture"]),
                             views_run.ViewsSettings(**{**FAST, "views_steps": 60}), prefs=prefs).start()
    steps = []
    while len(steps) < 3:
        events = run.client.poll()
        steps += [time.monotonic() for e in events if e.job_id == run.job_id and e.kind == "progress" and e.stage == "views"]
        time.sleep(0.01)
    asked = time.monotonic()
    run.cancel()
    ended = None
    while ended is None:
        ended = next((e.kind for e in run.client.poll() if e.job_id == run.job_id and e.kind != "progress"), None)
        time.sleep(0.01)
    facts["cancel"] = {"end": ended, "seconds": time.monotonic() - asked,
                       "step_seconds": (steps[-1] - steps[1]) / max(1, len(steps) - 2),
                       "unchanged": images() == before_cancel}

    # a file that is no image: its error, and nothing new
    bad = os.path.join(work, "not_an_image.png")
    with open(bad, "wb") as handle:
        handle.write(b"this is not a picture")
    before_bad = images()
    facts["bad_image_error"] = error_of(lambda: bpy.ops.image_to_3d.generate_views(filepath=bad, **FAST))
    facts["unchanged_after_error"] = images() == before_bad and not status.running
    facts["torch_modules"] = sorted(name for name, mod in sys.modules.items()
                                    if name.split(".")[0] == "torch" and mod is not None)
    np.savez(os.path.join(work, "views.npz"), sheet=sheet_pixels)
    ext.blender.worker_session.close()
    return facts


if __name__ == "__main__":
    scenarios.main(globals())
