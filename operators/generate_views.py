"""image_to_3d.generate_views: one image -> Zero123-XL's 40 views of the object around it
(the views job), shown as a contact sheet in the Image Editor; modal from the UI,
blocking from scripts. The options come from the panel (the views box) unless given."""

import bpy
from bpy.props import StringProperty

from ..backend.bridge.errors import BackendError
from ..backend.families.registry import VIEWS
from ..blender import options, views_run
from ..blender.addon import preferences
from ..blender.job_state import STATUS
from .generate import job_input
from .job_operator import OneJobOperator


def _option_properties() -> dict:
    """One property per views option, not remembered between calls: left out, the panel's value holds."""
    return {option.name: options.blender_property(option, remembered=False) for option in VIEWS.options}


class IMAGE_TO_3D_OT_generate_views(OneJobOperator, bpy.types.Operator):
    """Draw the object in the image from 40 cameras around it (Zero123-XL, as One-2-3-45 does) and show the
    contact sheet in the Image Editor"""

    bl_idname = "image_to_3d.generate_views"
    bl_label = "Generate Views"
    # UNDO without REGISTER, as generate: no redo panel that would re-run the whole job
    bl_options = {"UNDO"}

    __annotations__ = {
        "filepath": StringProperty(name="File", subtype="FILE_PATH", description="Image file (takes precedence)",
                                   options={"SKIP_SAVE"}),
        "image": StringProperty(name="Image", description="Name of a Blender image", options={"SKIP_SAVE"}),
        **_option_properties(),
    }

    def settings(self, context):
        """The views settings: an option given to the operator, else the panel's."""
        panel = context.scene.image_to_3d
        values = {option.name: getattr(self, option.name) if self.properties.is_property_set(option.name)
                  else getattr(panel, option.name) for option in VIEWS.options}
        return views_run.ViewsSettings(**values)

    def begin(self, context) -> bool:
        try:
            source = job_input(context, self.filepath, self.image, "")
            if source.task != "image":
                raise ValueError("views are drawn from an image: choose an image or a file")
            settings = self.settings(context)
            problem = views_run.setup_problem(preferences(), settings)
            if problem:
                self.fail(problem)
                return False
            run = views_run.ViewsRun(source, settings, prefs=preferences()).start()
        except (BackendError, OSError, ValueError) as error:
            self.fail(str(getattr(error, "message", error)))
            return False
        return self.follow(run)

    def end(self, context):
        """Show the finished job's contact sheet, or report why there is none."""
        done = self.ended()
        if done is None:
            return {"CANCELLED"}
        result = done.result
        image = views_run.show_contact_sheet(context, done.image.name, result)
        STATUS.last_views_image = image.name
        how = "estimated" if result.polar_estimated else "given" if not done.settings.views_estimate_elevation \
            else "assumed level"
        STATUS.last_result = (f"{image.name}: {len(result.views)} views, elevation {result.elevation:g} degrees "
                              f"({how}), {done.seconds:.1f} s")
        STATUS.last_error = "; ".join(result.notes)
        self.report({"INFO"}, STATUS.last_result)
        for note in result.notes:
            self.report({"WARNING"}, f"{done.image.name}: {note}")
        return {"FINISHED"}


classes = (IMAGE_TO_3D_OT_generate_views,)
