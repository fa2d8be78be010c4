"""image_to_3d.generate: one image -> one object; modal from the UI, blocking from scripts."""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .. import image_source, job, worker_session
from ..backend.errors import BackendError, Cancelled
from ..backend.settings import GenerateSettings
from ..scene_settings import SHADING_ITEMS

TIMER_SECONDS = 0.1


class JobProperties:
    """Options shared by generate and batch; unset ones come from the preferences."""

    resolution: IntProperty(name="Resolution", default=256, min=8, max=1024,
                            description="Marching-cubes grid points per axis")
    threshold: FloatProperty(name="Threshold", default=25.0, min=0.0, description="Density level of the surface")
    foreground_ratio: FloatProperty(name="Foreground Ratio", default=0.85, min=0.05, max=1.0,
                                    description="Share of the frame the object fills")
    remove_background: BoolProperty(name="Remove Background", default=True,
                                    description="Cut the object out of opaque images")
    shading: EnumProperty(name="Shading", items=SHADING_ITEMS, default="SMOOTH")
    rest_on_cursor: BoolProperty(name="Rest on Cursor", default=True,
                                 description="Lowest point at the 3D cursor's height")

    def job_options(self) -> job.Options:
        prefs = worker_session.preferences()
        defaults = {
            "resolution": "default_resolution", "threshold": "default_threshold",
            "foreground_ratio": "default_foreground_ratio", "remove_background": "default_remove_background",
            "shading": "default_shading", "rest_on_cursor": "default_rest_on_cursor",
        }
        values = {}
        for name, pref_name in defaults.items():
            if self.properties.is_property_set(name) or prefs is None:
                values[name] = getattr(self, name)
            else:
                values[name] = getattr(prefs, pref_name)
        # Blender's float properties are single precision: round off the float32 noise
        # (0.8500000238) so stored settings compare equal across runs.
        settings = GenerateSettings(int(values["resolution"]), round(values["threshold"], 5),
                                    round(values["foreground_ratio"], 5), bool(values["remove_background"]))
        return job.Options(settings, values["shading"], values["rest_on_cursor"])


def image_input(context, filepath: str, image_name: str) -> image_source.ImageInput:
    """The operator's source: a file, a named Blender image, or the panel's choice."""
    if not filepath and not image_name:
        panel = context.scene.image_to_3d
        if panel.source == "FILE":
            filepath = panel.filepath
        elif panel.image is not None:
            image_name = panel.image.name
    if filepath:
        return image_source.from_file(filepath)
    if image_name:
        image = bpy.data.images.get(image_name)
        if image is None:
            raise ValueError(f"there is no image named '{image_name}'")
        return image_source.from_image(image)
    raise ValueError("choose an image or a file first")


def redraw(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "IMAGE_EDITOR"}:
                area.tag_redraw()


def print_progress(current) -> None:
    print(f"image_to_3d: {current.describe()}", flush=True)


class IMAGE_TO_3D_OT_generate(JobProperties, bpy.types.Operator):
    """Turn an image into a textured mesh with TripoSR"""

    bl_idname = "image_to_3d.generate"
    bl_label = "Generate 3D"
    # UNDO without REGISTER: no "Adjust Last Operation" panel, whose redo would re-run
    # the whole job blocking the UI.
    bl_options = {"UNDO"}

    filepath: StringProperty(name="File", subtype="FILE_PATH", description="Image file (takes precedence)")
    image: StringProperty(name="Image", description="Name of a Blender image")

    _job = None
    _timer = None

    @classmethod
    def poll(cls, context):
        if job.STATUS.running:
            cls.poll_message_set("A job is already running")
            return False
        return True

    def start_job(self, context) -> bool:
        if not worker_session.model_path():
            self.report({"ERROR"}, "No model folder: set it in the add-on preferences")
            return False
        try:
            self._job = job.Job(image_input(context, self.filepath, self.image), self.job_options()).start()
        except (BackendError, OSError, ValueError) as error:
            self.fail(str(getattr(error, "message", error)))
            return False
        job.STATUS.running, job.STATUS.cancel_requested = True, False
        job.STATUS.label, job.STATUS.fraction, job.STATUS.last_error = self._job.describe(), 0.0, ""
        return True

    def fail(self, message: str) -> None:
        job.STATUS.last_error = message
        self.report({"ERROR"}, message)

    def end(self, context):
        """Turn the finished job into the object, or report why not."""
        done, self._job = self._job, None
        job.STATUS.running, job.STATUS.label = False, ""
        if isinstance(done.error, Cancelled):
            self.report({"WARNING"}, "Cancelled")
            return {"CANCELLED"}
        if done.error is not None:
            self.fail(done.error.message)
            return {"CANCELLED"}
        job.finish(context, done)
        self.report({"INFO"}, job.STATUS.last_result)
        return {"FINISHED"}

    def execute(self, context):
        if not self.start_job(context):
            return {"CANCELLED"}
        try:
            self._job.wait(on_progress=print_progress if bpy.app.background else None)
        except BaseException:  # Ctrl+C in a script: don't leave the worker busy
            self._job.cancel()
            job.STATUS.running = False
            raise
        return self.end(context)

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if not self.start_job(context):
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" or job.STATUS.cancel_requested:
            self._job.cancel()
            return self.stop_modal(context, self.end(context))
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if not self._job.poll():  # non-blocking: only reads what the worker sent
            job.STATUS.label, job.STATUS.fraction = self._job.describe(), self._job.fraction
            context.workspace.status_text_set(f"Image to 3D: {job.STATUS.label}  (Esc to cancel)")
            redraw(context)
            return {"PASS_THROUGH"}
        return self.stop_modal(context, self.end(context))

    def stop_modal(self, context, result):
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        redraw(context)
        return result

    def cancel(self, context):  # Blender closes the window or file under the modal
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
        if self._job is not None:
            self._job.cancel()
            self._job = None
        job.STATUS.running = False


class IMAGE_TO_3D_OT_cancel(bpy.types.Operator):
    """Stop the running generate or batch job"""

    bl_idname = "image_to_3d.cancel"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return job.STATUS.running

    def execute(self, context):
        job.STATUS.cancel_requested = True
        return {"FINISHED"}


class IMAGE_TO_3D_OT_show_model_input(bpy.types.Operator):
    """Show the image the model saw (background removed, framed, on grey) in the Image Editors"""

    bl_idname = "image_to_3d.show_model_input"
    bl_label = "Show Model Input"
    bl_options = {"INTERNAL"}

    image: StringProperty(name="Image")

    def execute(self, context):
        image = bpy.data.images.get(self.image)
        editors = [area for area in context.screen.areas if area.type == "IMAGE_EDITOR"] if context.screen else []
        if image is None or not editors:
            self.report({"WARNING"}, "Open an Image Editor to see the model's input" if image else "No model input yet")
            return {"CANCELLED"}
        for area in editors:
            area.spaces.active.image = image
        return {"FINISHED"}


classes = (IMAGE_TO_3D_OT_generate, IMAGE_TO_3D_OT_cancel, IMAGE_TO_3D_OT_show_model_input)
