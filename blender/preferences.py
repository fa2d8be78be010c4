"""Add-on preferences: where jobs run (this computer or a model server), the backend Python,
the model, the device and the job defaults.

The server's access token lives here, in Blender's preferences, never in a .blend file:
a property on the scene or an object would be saved with the file and shared with it.
"""

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from ..backend.families.registry import unique_slots
from . import options, worker_session
from .addon import ADDON_ID
from .job_state import STATUS

DEVICE_ITEMS = [
    ("AUTO", "Auto", "CUDA, then Apple MPS, then the CPU"),
    ("CPU", "CPU", "Always the CPU (slow but works everywhere)"),
    ("CUDA", "CUDA", "An NVIDIA GPU"),
    ("MPS", "MPS", "Apple silicon GPU"),
]

RUN_ON_ITEMS = [
    ("LOCAL", "This Computer", "Run the model in a process on this computer (the backend Python below)"),
    ("SERVER", "Server", "Send images to a model server (python -m backend serve) and get the meshes back"),
]

PRECISION_ITEMS = [
    ("FLOAT32", "Float32", "Reproduces the reference results (each model's own code)"),
    ("BFLOAT16", "BFloat16", "Faster networks (the parts that take most of a job's time), less exact: for previews"),
]


def _restart_worker(self, context):
    # Free the old worker (and its loaded model) now; a running job keeps its worker and
    # the next job builds a client for the new settings anyway.
    if not STATUS.running:
        worker_session.close()


def model_folder_annotations() -> dict:
    """A folder property per model slot, named as the family declares (names users' saved
    preferences already hold stay the same)."""
    made = {}
    for _, slot in unique_slots():
        made.setdefault(slot.preference, StringProperty(
            name=slot.label.title(), subtype="DIR_PATH", update=_restart_worker,
            description=f"Folder with {slot.contents} (Download fills one)"))
    return made


class ImageTo3DPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID
    __annotations__ = {
        "run_on": EnumProperty(name="Run On", items=RUN_ON_ITEMS, default="LOCAL", update=_restart_worker),
        "server_url": StringProperty(
            name="Server URL", update=_restart_worker,
            description="The model server's address, e.g. https://gpu-box:8765 (its start-up line prints it)",
        ),
        "server_token": StringProperty(
            name="Access Token", subtype="PASSWORD", update=_restart_worker,
            description="The server's access token: the contents of the token file it prints at start-up. "
                        "Kept in the preferences, never in .blend files",
        ),
        "server_ca_file": StringProperty(
            name="CA File", subtype="FILE_PATH", update=_restart_worker,
            description="For an https server with a certificate of its own: the CA certificate that signed it "
                        "(empty: the system's trusted certificates)",
        ),
        "python_path": StringProperty(
            name="Backend Python", subtype="FILE_PATH", update=_restart_worker,
            description="Python interpreter with torch and the backend's packages (Install backend makes one)",
        ),
        # one folder per model slot of every family (model_path: TripoSR's, shap_e_model_path, ...)
        **model_folder_annotations(),
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

        layout.prop(self, "run_on", expand=True)
        if self.run_on == "SERVER":
            box = layout.box()
            box.label(text="Model Server", icon="URL")
            for name in ("server_url", "server_token", "server_ca_file"):
                box.prop(self, name)

        box = layout.box()
        box.label(text="Backend on This Computer", icon="CONSOLE")
        box.enabled = self.run_on == "LOCAL"
        for name in ("python_path", "device", "precision", "unload_after_minutes"):
            box.prop(self, name)
        row = box.row()
        row.label(text=worker_session.model_status(), icon="MEMORY")
        row.operator("image_to_3d.release_model", icon="X")
        box.operator("image_to_3d.install_backend", text="Install Backend", icon="IMPORT")
        draw_install_status(box.column(align=True))
        models = box.box()
        models.label(text="Models (one folder each; a job loads the one it needs)", icon="FILE_3D")
        for family, slot in unique_slots():
            models.prop(self, slot.preference)
            ready, message = worker_session.model_readiness(self, family.identifier, slot)
            row = models.row()
            row.label(text=message, icon="CHECKMARK" if ready else "INFO")
            size = f" ({slot.download_size})" if slot.download_size else ""
            row.operator("image_to_3d.download_model", text=f"Download{size}", icon="URL").repo_id = slot.hub_repo
            row.operator("image_to_3d.use_local_model", text="", icon="FILE_FOLDER").repo_id = slot.hub_repo
        draw_download_status(models.column(align=True))

        box = layout.box()
        box.label(text="Defaults (the mesh options: for the Custom preset)", icon="OPTIONS")
        options.draw(box.column(align=True), self, options.PREFERENCE_PREFIX)


classes = (ImageTo3DPreferences,)
