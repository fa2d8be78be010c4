"""Download model: stabilityai/TripoSR's config.yaml and model.ckpt into the extension's
user folder, with progress; or "Use Local Folder" for files fetched by hand.

The download runs `python -m backend.hub` in the backend Python (Blender's own Python
has no huggingface_hub) through backend_setup.InstallJob, polled from a timer; only when
Blender's online access (the extension's network permission) is allowed.
"""

from pathlib import Path

import bpy
from bpy.props import StringProperty

from .. import backend_setup, worker_session

ADDON = __package__.rpartition(".")[0]
EXTENSION_ROOT = Path(__file__).resolve().parents[1]
TIMER_SECONDS = 0.2
DEFAULT_REPO = "stabilityai/TripoSR"


class _State:
    job = None
    done = 0
    total = 0
    folder = ""
    message = ""


STATE = _State()


def _read_lines(job):
    """Turn `python -m backend.hub` lines into progress, the folder or the error."""
    for line in job.poll():
        kind, _, rest = line.partition(" ")
        if kind == "progress":
            done, _, total = rest.partition(" ")
            STATE.done, STATE.total = int(done), int(total)
        elif kind == "folder":
            STATE.folder = rest.strip()
        elif kind == "error":
            STATE.message = rest.strip()


def _apply_folder(context, folder: str) -> None:
    addon = context.preferences.addons.get(ADDON)
    if addon is not None:
        addon.preferences.model_path = folder
        context.preferences.is_dirty = True


def _finish(context) -> set:
    job = STATE.job
    _read_lines(job)
    if job.state == "done" and STATE.folder:
        _apply_folder(context, STATE.folder)
        STATE.message = f"Model ready: {STATE.folder}"
        return {"FINISHED"}
    if job.state == "cancelled":
        STATE.message = "Download cancelled (it resumes from the cache next time)"
    elif not STATE.message:
        STATE.message = (f"Download failed: {job.error or 'see the log'}. Install the backend first "
                         "(its Python has huggingface_hub), or use a local folder")
    return {"CANCELLED"}


class IMAGE_TO_3D_OT_download_model(bpy.types.Operator):
    """Download the TripoSR weights (about 1.7 GB) from huggingface.co into the extension's folder"""

    bl_idname = "image_to_3d.download_model"
    bl_label = "Download Model"
    bl_options = {"REGISTER"}

    repo_id: StringProperty(name="Repository", default=DEFAULT_REPO)

    @classmethod
    def poll(cls, context):
        return STATE.job is None or STATE.job.finished

    def execute(self, context):
        if not bpy.app.online_access:
            self.report({"ERROR"}, "Online access is off: allow it in Preferences > System > Network, "
                                   "or download config.yaml and model.ckpt by hand and use Use Local Folder")
            return {"CANCELLED"}
        cache = bpy.utils.extension_path_user(ADDON, path="models", create=True)
        argv = [worker_session.backend_python(), "-m", "backend.hub", self.repo_id, "--cache-dir", cache]
        logs = Path(bpy.utils.extension_path_user(ADDON, path="logs", create=True))
        STATE.job = backend_setup.InstallJob(
            [backend_setup.Step(f"Download {self.repo_id}", argv, cwd=str(EXTENSION_ROOT))],
            log_path=logs / "download-model.log",
        )
        STATE.done = STATE.total = 0
        STATE.folder = STATE.message = ""
        STATE.job.start()
        if bpy.app.background:  # scripts and blender -b: block until done
            STATE.job.wait()
            result = _finish(context)
            self.report({"INFO"} if result == {"FINISHED"} else {"ERROR"}, STATE.message)
            return result
        self._timer = context.window_manager.event_timer_add(TIMER_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            STATE.job.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        _read_lines(STATE.job)
        if STATE.total:
            context.workspace.status_text_set(
                f"Downloading the model: {STATE.done / 2**20:.0f} of {STATE.total / 2**20:.0f} MB")
        for area in context.screen.areas:
            area.tag_redraw()
        if not STATE.job.finished:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        result = _finish(context)
        self.report({"INFO"} if result == {"FINISHED"} else {"WARNING"}, STATE.message)
        return result


class IMAGE_TO_3D_OT_cancel_model_download(bpy.types.Operator):
    """Stop the running model download"""

    bl_idname = "image_to_3d.cancel_model_download"
    bl_label = "Cancel Download"

    @classmethod
    def poll(cls, context):
        return STATE.job is not None and not STATE.job.finished

    def execute(self, context):
        STATE.job.cancel()
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


def draw_download_status(layout, context):
    """Progress of a running download, or the last outcome."""
    job = STATE.job
    if job is not None and not job.finished:
        share = STATE.done / STATE.total if STATE.total else 0.0
        layout.label(text=f"Downloading: {STATE.done / 2**20:.0f} / {STATE.total / 2**20:.0f} MB "
                          f"({share:.0%})", icon="SORTTIME")
        layout.operator(IMAGE_TO_3D_OT_cancel_model_download.bl_idname, icon="CANCEL")
    elif STATE.message:
        layout.label(text=STATE.message, icon="CHECKMARK" if STATE.folder else "ERROR")
    layout.operator(IMAGE_TO_3D_OT_use_local_model.bl_idname, icon="FILE_FOLDER")


classes = (IMAGE_TO_3D_OT_download_model, IMAGE_TO_3D_OT_cancel_model_download, IMAGE_TO_3D_OT_use_local_model)
