"""Add-on preferences: the backend Python, the model, the device and the job defaults."""

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import options, worker_session
from .addon import ADDON_ID
from .job_state import STATUS

DEVICE_ITEMS = [
    ("AUTO", "Auto", "CUDA, then Apple MPS, then the CPU"),
    ("CPU", "CPU", "Always the CPU (slow but works everywhere)"),
    ("CUDA", "CUDA", "An NVIDIA GPU"),
    ("MPS", "MPS", "Apple silicon GPU"),
]

PRECISION_ITEMS = [
    ("FLOAT32", "Float32", "Reproduces the reference TripoSR results"),
    ("BFLOAT16", "BFloat16", "Faster encoder, half the memory, less exact (good for previews)"),
]


def _restart_worker(self, context):
    # Free the old worker (and its loaded model) now; a running job keeps its worker and
    # the next job builds a client for the new settings anyway.
    if not STATUS.running:
        worker_session.close()


class ImageTo3DPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID
    __annotations__ = {
        "python_path": StringProperty(
            name="Backend Python", subtype="FILE_PATH", update=_restart_worker,
            description="Python interpreter with torch and the backend's packages (Install backend makes one)",
        ),
        "model_path": StringProperty(
            name="Model Folder", subtype="DIR_PATH", update=_restart_worker,
            description="Folder with TripoSR's config.yaml and model.ckpt (Download model fills one)",
        ),
        "device": EnumProperty(name="Device", items=DEVICE_ITEMS, default="AUTO", update=_restart_worker),
        "precision": EnumProperty(name="Precision", items=PRECISION_ITEMS, default="FLOAT32", update=_restart_worker),
        "unload_after_minutes": IntProperty(
            name="Unload Idle Model (minutes)", default=5, min=0, soft_max=120, update=_restart_worker,
            description="Give the GPU's memory back after this many minutes without a job (0: keep the model "
                        "loaded). A model on the CPU stays loaded until Release Model",
        ),
        # the defaults of every job option: default_resolution, default_threshold, ...
        **options.annotations(options.PREFERENCE_PREFIX),
    }

    def draw(self, context):
        from ..operators.download_model import draw_download_status
        from ..operators.install_backend import draw_install_status

        layout = self.layout
        ready, message = worker_session.readiness(self)
        layout.label(text=message, icon="CHECKMARK" if ready else "ERROR")

        box = layout.box()
        box.label(text="Backend", icon="CONSOLE")
        for name in ("python_path", "model_path", "device", "precision", "unload_after_minutes"):
            box.prop(self, name)
        row = box.row()
        row.label(text=worker_session.model_status(), icon="MEMORY")
        row.operator("image_to_3d.release_model", icon="X")
        row = box.row()
        row.operator("image_to_3d.install_backend", text="Install Backend", icon="IMPORT")
        row.operator("image_to_3d.download_model", text="Download Model", icon="URL")
        draw_install_status(box.column(align=True))
        draw_download_status(box.column(align=True))

        box = layout.box()
        box.label(text="Defaults (the mesh options: for the Custom preset)", icon="OPTIONS")
        options.draw(box.column(align=True), self, options.PREFERENCE_PREFIX)


classes = (ImageTo3DPreferences,)
