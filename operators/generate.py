"""image_to_3d.generate: one image or prompt -> one object; modal from the UI, blocking from scripts."""

import bpy
from bpy.props import StringProperty

from ..backend.bridge.errors import BackendError
from ..backend.bridge.options import FAMILIES_BY_NAME, prompt_with_image_problem
from ..backend.bridge.prompts import clean_prompt
from ..blender import image_source, mesh_builder, options, prompt_source, runs, worker_session
from ..blender.addon import preferences
from ..blender.job_state import STATUS
from .job_operator import OneJobOperator


class JobProperties:
    """The job options as properties, for generate and batch; unset ones come from the
    panel or the preferences (blender/options.py decides)."""

    __annotations__ = options.annotations(remembered=False, with_preset=True)

    def run_options(self, context, task: str = "image") -> runs.RunOptions:
        panel = getattr(context.scene, "image_to_3d", None)
        values = options.resolve(self, panel, preferences(), task)
        return runs.RunOptions(options.settings_of(values), **options.object_values(values))

    def image_prompt(self, context, family: str, given: str = "") -> str | None:
        """The prompt that goes with the image for a family whose image jobs take one (the
        operator's, else the panel's); None for the others. ValueError when it is missing."""
        if not FAMILIES_BY_NAME[family].prompt_with_image:
            return None
        panel = getattr(context.scene, "image_to_3d", None)
        text = given or (panel.prompt if panel is not None else "")
        if not text.strip():
            raise ValueError(prompt_with_image_problem(family, True, False))
        return clean_prompt(text)


def job_input(context, filepath: str, image_name: str, prompt: str):
    """The operator's source: a prompt, a file, a named Blender image, or the panel's choice;
    a prompt with a file or an image goes with it (a family whose image jobs take one)."""
    if not filepath and not image_name and not prompt:
        panel = context.scene.image_to_3d
        if panel.source == "TEXT":
            return prompt_source.from_text(panel.prompt)  # PromptError when it is empty
        if panel.source == "FILE":
            filepath = panel.filepath
        elif panel.image is not None:
            image_name = panel.image.name
    if filepath and image_name:
        raise ValueError("give one source: a file, an image or a prompt")
    if prompt and not (filepath or image_name):
        return prompt_source.from_text(prompt)
    if filepath:
        source = image_source.from_file(filepath)
    elif image_name:
        image = bpy.data.images.get(image_name)
        if image is None:
            raise ValueError(f"there is no image named '{image_name}'")
        source = image_source.from_image(image)
    else:
        raise ValueError("choose an image or a file first")
    source.prompt = clean_prompt(prompt) if prompt else None  # refused later unless the family takes one
    return source


class IMAGE_TO_3D_OT_generate(JobProperties, OneJobOperator, bpy.types.Operator):
    """Turn an image or a text prompt into a coloured mesh with the chosen model"""

    bl_idname = "image_to_3d.generate"
    bl_label = "Generate 3D"
    # UNDO without REGISTER: no "Adjust Last Operation" panel, whose redo would re-run
    # the whole job blocking the UI.
    bl_options = {"UNDO"}

    # SKIP_SAVE: the source is never carried over from an earlier call
    filepath: StringProperty(name="File", subtype="FILE_PATH", description="Image file (takes precedence)",
                             options={"SKIP_SAVE"})
    image: StringProperty(name="Image", description="Name of a Blender image", options={"SKIP_SAVE"})
    prompt: StringProperty(name="Prompt", description="A text prompt: the object to make; with an image, what it "
                                                       "shows (for a model that takes one, such as Make-It-3D)",
                           options={"SKIP_SAVE"})

    _previews_shown = 0

    def begin(self, context) -> bool:
        try:
            source = job_input(context, self.filepath, self.image, self.prompt)
            run_options = self.run_options(context, source.task)
            if source.task == "image" and source.prompt is None:
                source.prompt = self.image_prompt(context, run_options.settings.family)
            problem = worker_session.setup_problem(None, run_options.settings.family, source.task)
            if problem:
                self.report({"ERROR"}, problem)
                return False
            run = runs.GenerateRun(source, run_options).start()
        except (BackendError, OSError, ValueError) as error:
            self.fail(str(getattr(error, "message", error)))
            return False
        STATUS.preview_image, self._previews_shown = "", 0
        return self.follow(run)

    def step(self, context) -> bool:
        done = super().step(context)
        if self._run.previews != self._previews_shown and self._run.error is None:
            # a long job's newest picture of its object (also one that came with the result)
            self._previews_shown = self._run.previews
            STATUS.preview_image = mesh_builder.show_preview(self._run.image.name, self._run.preview.image).name
        return done

    def abandon(self, context) -> None:
        super().abandon(context)
        self.drop_preview()

    @staticmethod
    def drop_preview() -> None:
        """A failed or cancelled job leaves the scene as it was: its preview image goes too."""
        image = bpy.data.images.get(STATUS.preview_image) if STATUS.preview_image else None
        if image is not None:
            bpy.data.images.remove(image)
        STATUS.preview_image = ""

    def end(self, context):
        """Turn the finished job into the object, or report why not."""
        done = self.ended()
        if done is None:
            self.drop_preview()
            return {"CANCELLED"}
        runs.finish(context, done)
        self.report({"INFO"}, STATUS.last_result)
        for note in done.result.notes:
            self.report({"WARNING"}, f"{done.image.name}: {note}")
        return {"FINISHED"}


class IMAGE_TO_3D_OT_cancel(bpy.types.Operator):
    """Stop the running generate or batch job"""

    bl_idname = "image_to_3d.cancel"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return STATUS.running

    def execute(self, context):
        STATUS.cancel_requested = True
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
