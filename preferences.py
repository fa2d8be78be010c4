"""Add-on preferences: the backend Python, the model, the device and the job defaults."""

import importlib
import importlib.util

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import worker_session
from .scene_settings import SHADING_ITEMS

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
    from .job import STATUS

    if not STATUS.running:
        worker_session.close()


def _operator_module(name: str):
    """operators/<name>.py when present (another part of the project writes it)."""
    if importlib.util.find_spec(f"{__package__}.operators.{name}") is None:
        return None
    return importlib.import_module(f"{__package__}.operators.{name}")


class ImageTo3DPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: StringProperty(
        name="Backend Python", subtype="FILE_PATH", update=_restart_worker,
        description="Python interpreter with torch and the backend's packages (Install backend makes one)",
    )
    model_path: StringProperty(
        name="Model Folder", subtype="DIR_PATH", update=_restart_worker,
        description="Folder with TripoSR's config.yaml and model.ckpt (Download model fills one)",
    )
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="AUTO", update=_restart_worker)
    precision: EnumProperty(name="Precision", items=PRECISION_ITEMS, default="FLOAT32", update=_restart_worker)
    default_resolution: IntProperty(name="Resolution", default=256, min=8, max=1024, soft_max=512)
    default_threshold: FloatProperty(name="Threshold", default=25.0, min=0.0, soft_max=100.0)
    default_foreground_ratio: FloatProperty(name="Foreground Ratio", default=0.85, min=0.05, max=1.0)
    default_remove_background: BoolProperty(name="Remove Background", default=True)
    default_shading: EnumProperty(name="Shading", items=SHADING_ITEMS, default="SMOOTH")
    default_rest_on_cursor: BoolProperty(name="Rest on Cursor", default=True)

    def draw(self, context):
        layout = self.layout
        ready, message = worker_session.readiness(self)
        layout.label(text=message, icon="CHECKMARK" if ready else "ERROR")

        box = layout.box()
        box.label(text="Backend", icon="CONSOLE")
        box.prop(self, "python_path")
        box.prop(self, "model_path")
        box.prop(self, "device")
        box.prop(self, "precision")
        row = box.row()
        for idname, text, icon in (("image_to_3d.install_backend", "Install Backend", "IMPORT"),
                                    ("image_to_3d.download_model", "Download Model", "URL")):
            if _operator_exists(idname):
                row.operator(idname, text=text, icon=icon)
        # The installer's and downloader's own progress, log and hints.
        for module_name, draw_name in (("install_backend", "draw_install_status"),
                                       ("download_model", "draw_download_status")):
            draw = getattr(_operator_module(module_name), draw_name, None)
            if draw is not None:
                draw(box, context)

        box = layout.box()
        box.label(text="Defaults", icon="OPTIONS")
        column = box.column(align=True)
        for name in ("default_resolution", "default_threshold", "default_foreground_ratio",
                     "default_remove_background", "default_shading", "default_rest_on_cursor"):
            column.prop(self, name)


def _operator_exists(idname: str) -> bool:
    module, name = idname.split(".")
    try:
        getattr(getattr(bpy.ops, module), name).get_rna_type()
    except KeyError:  # not registered (its module is absent)
        return False
    return True


classes = (ImageTo3DPreferences,)
