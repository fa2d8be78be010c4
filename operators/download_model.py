"""Download model: the files of a model slot's official repository (TripoSR's config.yaml
and model.ckpt, a Shap-E folder, ...: backend/families/contract.py ModelSlot) into the
extension's user folder, with progress; or "Use Local Folder" for files fetched by hand.
The folder goes into the slot's preference.

The download runs `python -m backend.setup.hub` in the backend Python (Blender's own
Python has no huggingface_hub) through backend.setup.installer.StepRunner, followed from
a timer (operators/modal.py); only when Blender's online access (the extension's network
permission) is allowed.
"""

from pathlib import Path

import bpy
from bpy.props import StringProperty

from ..backend.bridge.errors import BackendError
from ..backend.families.registry import FAMILIES, slot_for_repo
from ..backend.model_folder import check_slot_folder
from ..backend.setup import installer
from ..blender import worker_session
from ..blender.addon import preferences, user_folder
from .modal import BackgroundWorkOperator, step_runner_cancel_operator

EXTENSION_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FAMILY = FAMILIES[0]
DEFAULT_REPO = DEFAULT_FAMILY.slots_for(DEFAULT_FAMILY.tasks[0])[0].hub_repo


def model_slot(repo_id: str) -> tuple:
    """(family, slot) of a repository: the official ones are known; others are taken to be
    in the first family's layout (a TripoSR fine-tune, say)."""
    known = slot_for_repo(repo_id)
    if known is not None:
        return known[0], known[2]
    return DEFAULT_FAMILY, DEFAULT_FAMILY.slots_for(DEFAULT_FAMILY.tasks[0])[0]


class _State:
    runner = None
    repo_id = DEFAULT_REPO
    done = 0
    total = 0
    folder = ""
    message = ""


STATE = _State()


def _read_lines(runner):
    """Turn `python -m backend.setup.hub` lines into progress, the folder or the error."""
    for line in runner.poll():
        kind, _, rest = line.partition(" ")
        if kind == "progress":
            done, _, total = rest.partition(" ")
            STATE.done, STATE.total = int(done), int(total)
        elif kind == "folder":
            STATE.folder = rest.strip()
        elif kind in ("error", "warning"):
            STATE.message = rest.strip()


def _apply_folder(context, folder: str, repo_id: str) -> None:
    prefs = preferences()
    if prefs is not None:
        setattr(prefs, model_slot(repo_id)[1].preference, folder)
        context.preferences.is_dirty = True


class IMAGE_TO_3D_OT_download_model(BackgroundWorkOperator, bpy.types.Operator):
    """Download a model from huggingface.co into the extension's folder (sizes beside each Download button)"""

    bl_idname = "image_to_3d.download_model"
    bl_label = "Download Model"
    bl_options = {"REGISTER"}

    repo_id: StringProperty(name="Repository", default=DEFAULT_REPO)

    @classmethod
    def poll(cls, context):
        return STATE.runner is None or STATE.runner.finished

    def execute(self, context):
        # Called from a button without invoke, too: follow the download from a timer where possible.
        if bpy.app.background or context.window is None:
            return super().execute(context)
        return super().invoke(context, None)

    def begin(self, context) -> bool:
        if not bpy.app.online_access:
            self.report({"ERROR"}, "Online access is off: allow it in Preferences > System > Network, "
                                   f"or download {model_slot(self.repo_id)[1].contents} by hand and use Use Local Folder")
            return False
        cache = str(user_folder("models"))
        argv = [worker_session.backend_python(), "-m", "backend.setup.hub", self.repo_id, "--cache-dir", cache]
        if model_slot(self.repo_id)[1].needs_background_model:  # opaque pictures need rembg's model
            argv += ["--background-model-dir", worker_session.background_model_dir()]
        STATE.repo_id = self.repo_id
        STATE.runner = installer.StepRunner(
            [installer.Step(f"Download {self.repo_id}", argv, cwd=str(EXTENSION_ROOT))],
            log_path=user_folder("logs") / "download-model.log",
        )
        STATE.done = STATE.total = 0
        STATE.folder = STATE.message = ""
        STATE.runner.start()
        return True

    def step(self, context) -> bool:
        _read_lines(STATE.runner)
        return STATE.runner.finished

    def stop(self, context) -> None:
        STATE.runner.cancel()

    def status_text(self) -> str | None:
        if not STATE.total:
            return None
        return f"Downloading the model: {STATE.done / 2**20:.0f} of {STATE.total / 2**20:.0f} MB"

    def end(self, context):
        runner = STATE.runner
        _read_lines(runner)
        if runner.state == "done" and STATE.folder:
            _apply_folder(context, STATE.folder, STATE.repo_id)
            warning = STATE.message  # the background-removal model may have failed alone
            STATE.message = f"Model ready: {STATE.folder}" + (f" ({warning})" if warning else "")
            self.report({"INFO"}, STATE.message)
            return {"FINISHED"}
        if runner.state == "cancelled":
            STATE.message = "Download cancelled (it resumes from the cache next time)"
        elif not STATE.message:
            STATE.message = (f"Download failed: {runner.error or 'see the log'}. Install the backend first "
                             "(its Python has huggingface_hub), or use a local folder")
        self.report({"ERROR"} if bpy.app.background else {"WARNING"}, STATE.message)
        return {"CANCELLED"}


IMAGE_TO_3D_OT_cancel_model_download = step_runner_cancel_operator(
    "IMAGE_TO_3D_OT_cancel_model_download", "image_to_3d.cancel_model_download", "Cancel Download",
    "Stop the running model download", STATE)


class IMAGE_TO_3D_OT_use_local_model(bpy.types.Operator):
    """Use a model folder downloaded by hand (the files its official repository holds)"""

    bl_idname = "image_to_3d.use_local_model"
    bl_label = "Use Local Folder"

    directory: StringProperty(subtype="DIR_PATH")
    repo_id: StringProperty(name="Repository", default=DEFAULT_REPO, description="Which model the folder holds")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        folder = Path(bpy.path.abspath(self.directory))
        try:
            family, slot = model_slot(self.repo_id)
            check_slot_folder(folder, slot, family.identifier)  # the worker's own check, without torch
        except BackendError as error:
            self.report({"ERROR"}, f"{error.message} (from huggingface.co/{self.repo_id})")
            return {"CANCELLED"}
        _apply_folder(context, str(folder), self.repo_id)
        self.report({"INFO"}, f"Model folder: {folder}")
        return {"FINISHED"}


def draw_download_status(layout):
    """Progress of a running download, or the last outcome."""
    runner = STATE.runner
    if runner is not None and not runner.finished:
        share = STATE.done / STATE.total if STATE.total else 0.0
        layout.label(text=f"Downloading: {STATE.done / 2**20:.0f} / {STATE.total / 2**20:.0f} MB "
                          f"({share:.0%})", icon="SORTTIME")
        layout.operator(IMAGE_TO_3D_OT_cancel_model_download.bl_idname, icon="CANCEL")
    elif STATE.message:
        layout.label(text=STATE.message, icon="CHECKMARK" if STATE.folder else "ERROR")


classes = (IMAGE_TO_3D_OT_download_model, IMAGE_TO_3D_OT_cancel_model_download, IMAGE_TO_3D_OT_use_local_model)
