"""image_to_3d.batch: every image of a folder -> objects on a grid in a new collection."""

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from .. import job, worker_session
from ..exporters import FORMAT_ITEMS
from .generate import TIMER_SECONDS, JobProperties, redraw


def print_progress(run) -> None:
    print(f"image_to_3d batch: {run.progress_label()}", flush=True)


class IMAGE_TO_3D_OT_batch(JobProperties, bpy.types.Operator):
    """Turn every image of a folder into a mesh; bad images are skipped and reported"""

    bl_idname = "image_to_3d.batch"
    bl_label = "Generate Batch"
    # UNDO without REGISTER: no "Adjust Last Operation" panel, whose redo would re-run
    # the whole job blocking the UI.
    bl_options = {"UNDO"}

    directory: StringProperty(name="Folder", subtype="DIR_PATH", description="Folder of images")
    recursive: BoolProperty(name="Include Subfolders", default=False)
    export_dir: StringProperty(name="Export To", subtype="DIR_PATH",
                               description="Write each object here too (empty: no export)")
    export_format: EnumProperty(name="Format", items=FORMAT_ITEMS, default="GLB")

    _run = None
    _timer = None

    @classmethod
    def poll(cls, context):
        if job.STATUS.running:
            cls.poll_message_set("A job is already running")
            return False
        return True

    def start(self, context) -> bool:
        if not worker_session.model_path():
            self.report({"ERROR"}, "No model folder: set it in the add-on preferences")
            return False
        directory = self.directory or context.scene.image_to_3d.batch_directory
        try:
            self._run = job.BatchRun(context, directory, self.job_options(), self.recursive,
                                     self.export_dir, self.export_format)
        except ValueError as error:
            job.STATUS.last_error = str(error)
            self.report({"ERROR"}, str(error))
            return False
        job.STATUS.running, job.STATUS.cancel_requested, job.STATUS.last_error = True, False, ""
        job.STATUS.last_batch = self._run
        return True

    def end(self, context):
        run, self._run = self._run, None
        job.STATUS.running, job.STATUS.label = False, ""
        run.write_log()
        message = f"Batch: {run.summary()} (log: {run.log_path})"
        if run.failed:
            job.STATUS.last_error = message
            # A warning, not an error: the good images are in the scene and stay there.
            self.report({"WARNING"}, message)
        else:
            self.report({"INFO"}, message)
        if bpy.app.background:
            print(message, flush=True)
        return {"FINISHED"} if run.succeeded else {"CANCELLED"}

    def execute(self, context):
        if not self.start(context):
            return {"CANCELLED"}
        try:
            self._run.run(context, on_progress=print_progress if bpy.app.background else None)
        except BaseException:
            if self._run.current is not None:
                self._run.current.cancel()
            job.STATUS.running = False
            raise
        return self.end(context)

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if not self.start(context):
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if (event.type == "ESC" or job.STATUS.cancel_requested) and not self._run.stopped:
            self._run.cancel()  # finish the current image, keep what is done
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if not self._run.step(context):
            job.STATUS.label = self._run.progress_label()
            job.STATUS.fraction = self._run.position / max(1, self._run.total)
            context.workspace.status_text_set(f"Image to 3D batch: {job.STATUS.label}  (Esc to stop)")
            redraw(context)
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        redraw(context)
        return self.end(context)

    def cancel(self, context):
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
        if self._run is not None and self._run.current is not None:
            self._run.current.cancel()
        job.STATUS.running = False


classes = (IMAGE_TO_3D_OT_batch,)
