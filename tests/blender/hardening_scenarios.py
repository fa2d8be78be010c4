"""Issue 24's cases inside real Blender (the bpy wheel): pixels that are not numbers, a
batch exporting textured OBJs into its own input folder, export names that differ only
in letter case or are Windows device names.

    python tests/blender/hardening_scenarios.py exports WORK_DIR

Writes WORK_DIR/exports.json; test_blender_hardening.py makes the assertions. Settings
from the environment: I3D_ZIP, I3D_MODEL (the tiny TripoSR checkpoint), I3D_PICTURE.
"""

import hashlib
import os
import shutil
import sys

if __name__ == "__main__":
    sys.modules["torch"] = None  # the Blender side must work without torch

import bpy
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_env
import scenarios
from scenarios import error_of


def digests(folder: str) -> dict:
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(folder)) if os.path.isfile(os.path.join(folder, name))}


def scenario_exports(work: str, env: dict) -> dict:
    ext = blender_env.install_and_enable(env["zip"])
    blender_env.configure(sys.executable, env["model"])
    blender_env.raw_surface()
    facts = {}

    # a float image (a render, a compositor's output) with NaN and infinity in it
    image = bpy.data.images.new("broken render", 64, 64, alpha=True, float_buffer=True)
    pixels = np.full((64, 64, 4), 0.5, np.float32)
    pixels[10, 10, 0], pixels[20, 20, 2] = np.nan, np.inf
    image.pixels.foreach_set(pixels.ravel())
    objects_before = len(bpy.data.objects)
    facts["nan_error"] = error_of(lambda: bpy.ops.image_to_3d.generate(image=image.name, resolution=32))
    facts["nan_objects_added"] = len(bpy.data.objects) - objects_before

    # a batch whose export folder is its input folder, holding chair.png and chair_color.png
    folder = os.path.join(work, "pictures")
    os.makedirs(folder)
    for name in ("chair.png", "chair_color.png"):
        shutil.copy(env["picture"], os.path.join(folder, name))
    inputs = digests(folder)
    bpy.ops.image_to_3d.batch(directory=folder, export_dir=folder, export_format="OBJ", resolution=32,
                              preset="CUSTOM", max_faces=300, texture_size=64)
    run = ext.blender.job_state.STATUS.last_batch
    after = digests(folder)
    facts["batch_failed"] = [[os.path.basename(path), message] for path, message in run.failed]
    facts["inputs_unchanged"] = {name: after.get(name) == digest for name, digest in inputs.items()}
    facts["made"] = sorted(name for name in set(after) - set(inputs) if not name.startswith("image_to_3d_batch_"))
    with open(os.path.join(folder, "chair_2.mtl")) as handle:
        facts["chair_mtl"] = handle.read()

    # names one file on macOS and Windows, and Windows device names
    exports = os.path.join(work, "names")
    obj = bpy.context.view_layer.objects.active
    written = []
    for name in ("CON", "con", "Table", "table"):
        obj.name = name
        written.append(os.path.basename(ext.blender.exporters.export_object(bpy.context, obj, exports, "PLY")))
    facts["names"] = written
    ext.blender.worker_session.close()
    return facts


if __name__ == "__main__":
    scenarios.main(globals())
