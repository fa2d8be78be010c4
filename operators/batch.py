"""image_to_3d.batch: every image of a folder, or every prompt of a prompts file -> objects on
a grid in a new collection."""

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from ..backend.bridge.errors import BackendError
from ..blender import runs, worker_session
from ..blender.exporters import FORMAT_ITEMS
from ..blender.job_state import STATUS
from .generate import JobProperties
from .job_operator import JobOperator


class IMAGE_TO_3D_OT_batch(JobProperties, JobOperator, bpy.types.Operator):
    """Turn every image of a folder, or every line of a prompts file, into a mesh; bad ones are skipped and reported"""

    bl_idname = "image_to_3d.batch"
    bl_label = "Generate Batch"
    # UNDO without REGISTER: no "Adjust Last Operation" panel, whose redo would re-run
    # the whole job blocking the UI.
    bl_options = {"UNDO"}

    # SKIP_SAVE: nothing is carried over from an earlier call
    directory: StringProperty(name="Folder", subtype="DIR_PATH", description="Folder of images", options={"SKIP_SAVE"})
    prompts_file: StringProperty(name="Prompts File", subtype="FILE_PATH", options={"SKIP_SAVE"},
                                 description="A text file of prompts, one object per line (instead of a folder)")
    recursive: BoolProperty(name="Include Subfolders", default=False, options={"SKIP_SAVE"})
    export_dir: StringProperty(name="Export To", subtype="DIR_PATH", options={"SKIP_SAVE"},
                               description="Write each object here too (empty: no export)")
    export_format: EnumProperty(name="Format", items=FORMAT_ITEMS, default="GLB", options={"SKIP_SAVE"})
    prompt: StringProperty(name="Prompt", options={"SKIP_SAVE"},
                           description="What every image shows, for a model whose image jobs take a prompt "
                                       "(default: the panel's)")

    _run = None

    def begin(self, context) -> bool:
        panel = context.scene.image_to_3d
        prompts_file = self.prompts_file
        if not prompts_file and not self.directory and panel.batch_source == "PROMPTS":
            prompts_file = panel.batch_prompts_file
        task = "text" if prompts_file else "image"
        run_options = self.run_options(context, task)
        problem = worker_session.setup_problem(None, run_options.settings.family, task)
        if problem:
            self.report({"ERROR"}, problem)
            return False
        directory = self.directory or panel.batch_directory
        try:
            image_prompt = self.image_prompt(context, run_options.settings.family, self.prompt) if task == "image" else None
            self._run = runs.BatchRun(context, directory, run_options, self.recursive, self.export_dir,
                                      self.export_format, prompts_file, image_prompt)
        except (BackendError, ValueError) as error:
            self.fail(str(getattr(error, "message", error)))
            return False
        STATUS.running, STATUS.cancel_requested, STATUS.last_error = True, False, ""
        STATUS.last_batch = self._run
        return True

    def step(self, context) -> bool:
        if self._run.step(context):
            return True
        STATUS.label = self._run.progress_label()
        STATUS.fraction = self._run.position / max(1, self._run.total)
        return False

    def stop(self, context) -> None:
        self._run.cancel()  # finish the current image, keep what is done

    def abandon(self, context) -> None:
        if self._run is not None and self._run.current is not None:
            self._run.current.cancel()
        STATUS.running = False

    def interrupted(self, context) -> set:
        run = self._run
        run.interrupt()
        STATUS.running = False
        run.write_log()
        message = f"Batch interrupted (Ctrl+C): {run.summary()} (log: {run.log_path})"
        STATUS.last_error = message
        self.report({"ERROR"}, message)
        return {"CANCELLED"}

    def status_text(self) -> str:
        return f"Image to 3D batch: {STATUS.label}  (Esc to stop)"

    def progress_line(self) -> tuple:
        run = self._run
        return (run.position, run.current.stage if run.current else ""), f"image_to_3d batch: {run.progress_label()}"

    def end(self, context):
        run, self._run = self._run, None
        STATUS.running, STATUS.label = False, ""
        run.write_log()
        message = f"Batch: {run.summary()} (log: {run.log_path})"
        if run.failed:
            STATUS.last_error = message
            # A warning, not an error: the good images are in the scene and stay there.
            self.report({"WARNING"}, message)
        else:
            self.report({"INFO"}, message)
        if bpy.app.background:
            print(message, flush=True)
        return {"FINISHED"} if run.succeeded else {"CANCELLED"}


classes = (IMAGE_TO_3D_OT_batch,)
