"""Download model: stabilityai/TripoSR's config.yaml and model.ckpt into the extension's
user folder, with progress; or "Use Local Folder" for files fetched by hand.

The download runs `python -m backend.setup.hub` in the backend Python (Blender's own
Python has no huggingface_hub) through backend.setup.installer.StepRunner, followed from
a timer (operators/modal.py); only when Blender's online access (the extension's network
permission) is allowed.
"""

from pathlib import Path

import bpy
from bpy.props import StringProperty

from ..backend.setup import installer
from ..blender import worker_session
from ..blender.addon import preferences, user_folder
from .modal import BackgroundWorkOperator

EXTENSION_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPO = "stabilityai/TripoSR"


class _State:
    runner = None
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


def _apply_folder(context, folder: str) -> None:
    prefs = preferences()
    if prefs is not None:
        prefs.model_path = folder
        context.preferences.is_dirty = True


class IMAGE_TO_3D_OT_download_model(BackgroundWorkOperator, bpy.types.Operator):
    """Download the TripoSR weights (about 1.7 GB) from huggingface.co into the extension's folder"""

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
                                   "or download config.yaml and model.ckpt by hand and use Use Local Folder")
            return False
        cache = str(user_folder("models"))
        argv = [worker_session.backend_python(), "-m", "backend.setup.hub", self.repo_id, "--cache-dir", cache,
                "--background-model-dir", worker_session.background_model_dir()]
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
            _apply_folder(context, STATE.folder)
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


class IMAGE_TO_3D_OT_cancel_model_download(bpy.types.Operator):
    """Stop the running model download"""

    bl_idname = "image_to_3d.cancel_model_download"
    bl_label = "Cancel Download"

    @classmethod
    def poll(cls, context):
        return STATE.runner is not None and not STATE.runner.finished

    def execute(self, context):
        STATE.runner.cancel()
        return {"FINISHED"}


class IMAGE_TO_3D_OT_use_local_model(bpy.types.Operator):
    """Use a folder that holds TripoSR's config.yaml and model.ckpt (downloaded by hand)"""

    bl_idname = "image_to_3d.use_local_model"
    bl_label = "Use Local Folder"

    directory: StringProperty(subtype="DIR_PATH")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        folder = Path(bpy.path.abspath(self.directory))
        missing = [n for n in ("config.yaml", "model.ckpt") if not (folder / n).is_file()]
        if missing:
            self.report({"ERROR"}, f"{folder} lacks {' and '.join(missing)} (from huggingface.co/{DEFAULT_REPO})")
            return {"CANCELLED"}
        _apply_folder(context, str(folder))
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
    layout.operator(IMAGE_TO_3D_OT_use_local_model.bl_idname, icon="FILE_FOLDER")


classes = (IMAGE_TO_3D_OT_download_model, IMAGE_TO_3D_OT_cancel_model_download, IMAGE_TO_3D_OT_use_local_model)
