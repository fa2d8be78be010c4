"""image_to_3d.release_model: stop the model process and give its memory (GPU or RAM) back."""

import bpy

from ..blender import worker_session
from ..blender.addon import redraw_ui
from ..blender.job_state import STATUS


class IMAGE_TO_3D_OT_release_model(bpy.types.Operator):
    """Stop the model process and free the memory it holds; the next job loads the model again"""

    bl_idname = "image_to_3d.release_model"
    bl_label = "Release Model"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        if STATUS.running:
            cls.poll_message_set("A job is running: cancel it first")
            return False
        if not worker_session.is_running():
            cls.poll_message_set("No model is loaded")
            return False
        return True

    def execute(self, context):
        worker_session.close()
        redraw_ui(context)
        self.report({"INFO"}, "Released the model and its memory")
        return {"FINISHED"}


classes = (IMAGE_TO_3D_OT_release_model,)
