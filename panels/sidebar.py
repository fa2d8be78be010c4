"""Sidebar panels, tab "Image to 3D", in the 3D Viewport and the Image Editor."""

import bpy

from ..backend.bridge.options import ALL_OPTIONS, ASSET_OPTIONS, FAMILIES_BY_NAME, PRESET_OPTION
from ..backend.families.registry import VIEWS, families_taking
from ..backend.zero123.declaration import ELEVATION
from ..blender import options, views_run, worker_session
from ..blender.addon import ADDON_ID, preferences
from ..blender.job_state import STATUS

CATEGORY = "Image to 3D"
ELEVATION_NAME = ELEVATION.name  # greyed out while the elevation is estimated


def draw_progress(layout) -> bool:
    """Stage, percentage and Cancel while a job runs; True if one runs."""
    status = STATUS
    if not status.running:
        return False
    box = layout.box()
    box.progress(factor=status.fraction, type="BAR", text=status.label or "Starting...")
    draw_preview(box)
    box.operator("image_to_3d.cancel", icon="CANCEL")
    return True


def draw_preview(layout) -> None:
    """A long job's latest picture of its object (Make-It-3D's current render), while it runs."""
    image = bpy.data.images.get(STATUS.preview_image) if STATUS.preview_image else None
    if image is None:
        return
    preview = image.preview_ensure()
    if preview is not None:
        layout.template_icon(icon_value=preview.icon_id, scale=8.0)
    layout.label(text=image.name, icon="IMAGE_DATA")


def draw_last(layout) -> None:
    status = STATUS
    if status.last_result:
        layout.label(text=status.last_result, icon="CHECKMARK")
        if status.last_input_image in bpy.data.images:
            layout.operator("image_to_3d.show_model_input", icon="IMAGE_DATA").image = status.last_input_image
    if status.last_error:
        box = layout.box()
        for i, line in enumerate(_wrap(status.last_error, 48)):
            box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def panel_task(settings) -> str:
    return "text" if settings.source == "TEXT" else "image"


def draw_model(layout, settings, task: str) -> str:
    """The model family beside the source (a label when one family alone reads the input),
    and what it costs on a CPU when it says so and the jobs may run on one; returns it."""
    family = options.family_for(settings.family, task)
    if len(families_taking(task)) == 1:
        layout.label(text=f"Model: {FAMILIES_BY_NAME[family].label}", icon="FILE_3D")
    else:
        layout.prop(settings, "family")
    slow_here = FAMILIES_BY_NAME[family].notes.get("cpu")
    prefs = preferences()
    if slow_here and prefs is not None and prefs.run_on == "LOCAL" and prefs.device != "CUDA":
        for i, line in enumerate(_wrap(slow_here[0].upper() + slow_here[1:], 48)):
            layout.label(text=line, icon="TIME" if i == 0 else "BLANK1")
    return family


def draw_options(layout, settings, family: str | None = None, task: str | None = None) -> None:
    """The options a job of this family and input uses (by default the panel's source
    and model choice); the operators read them (blender/options.py resolve).

    The preset stays live whatever "use preference defaults" says: Raw Surface is one
    click away. Custom shows the mesh stage's own options.
    """
    task = task or panel_task(settings)
    family = family or options.family_for(settings.family, task)
    layout.prop(settings, PRESET_OPTION.name)
    custom = options.shows_asset_options(settings)
    if not custom:
        for i, line in enumerate(_wrap(options.preset_summary(settings.preset), 44)):
            layout.label(text=line, icon="MOD_DECIM" if i == 0 else "BLANK1")
    layout.prop(settings, "use_defaults")
    column = layout.column(align=True)
    column.enabled = not settings.use_defaults
    shown = [option for option in ALL_OPTIONS if custom or option not in ASSET_OPTIONS]
    options.draw(column, settings, options=shown, family=family, task=task)


def draw_model_status(layout) -> None:
    """Whether the model is loaded, where, and the button that gives its memory back."""
    row = layout.row()
    row.label(text=worker_session.model_status(), icon="MEMORY")
    row.operator("image_to_3d.release_model", text="", icon="X")


def draw_not_ready(layout, context, family: str, task: str) -> bool:
    prefs = preferences()
    ready, message = worker_session.readiness(prefs, family, task) if prefs else (False, "Enable the add-on")
    if not ready:
        box = layout.box()
        for i, line in enumerate(_wrap(message, 48)):
            box.label(text=line, icon="INFO" if i == 0 else "BLANK1")
        box.operator("preferences.addon_show", text="Open Preferences", icon="PREFERENCES").module = ADDON_ID
    return not ready


class SidebarPanel:
    bl_region_type = "UI"
    bl_category = CATEGORY


def draw_main(layout, context, task: str, draw_source) -> None:
    """Both editors' main panel: readiness, the source (`draw_source(context, layout,
    settings)` draws the editor's own and returns its Generate button), the model, its
    options, then progress and Cancel while a job runs or else Generate, the last result
    and the loaded model."""
    settings = context.scene.image_to_3d
    family = options.family_for(settings.family, task)
    draw_not_ready(layout, context, family, task)
    generate_button = draw_source(context, layout, settings)
    draw_model(layout, settings, task)
    if task == "image" and FAMILIES_BY_NAME[family].prompt_with_image:  # what the picture shows (Make-It-3D)
        layout.prop(settings, "prompt", text="Prompt", icon="FONT_DATA")
    draw_options(layout, settings, family, task)
    if not draw_progress(layout):
        generate_button(layout)
    draw_last(layout)
    draw_model_status(layout)


def draw_scene_source(context, layout, settings):
    """The 3D Viewport's source: a Blender image, a file or a prompt."""
    layout.prop(settings, "source", expand=True)
    if settings.source == "TEXT":
        layout.prop(settings, "prompt", text="", icon="FONT_DATA")
    elif settings.source == "FILE":
        layout.prop(settings, "filepath", text="")
    else:
        layout.template_ID(settings, "image", open="image.open")

    def generate_button(layout):
        op = layout.operator("image_to_3d.generate", icon="MESH_MONKEY")
        if settings.source == "TEXT":
            op.prompt = settings.prompt
        elif settings.source == "FILE":
            op.filepath = settings.filepath
        elif settings.image is not None:
            op.image = settings.image.name

    return generate_button


def draw_editor_image(context, layout, settings):
    """The Image Editor's source: the image it shows."""
    image = context.space_data.image
    layout.label(text=f"Source: {image.name}" if image else "Open or render an image first",
                 icon="IMAGE_DATA" if image else "INFO")

    def generate_button(layout):
        row = layout.row()
        row.enabled = image is not None
        row.operator("image_to_3d.generate", icon="MESH_MONKEY").image = image.name if image else ""

    return generate_button


class VIEW3D_PT_image_to_3d(SidebarPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_label = "Image to 3D"

    def draw(self, context):
        draw_main(self.layout, context, panel_task(context.scene.image_to_3d), draw_scene_source)


class IMAGE_PT_image_to_3d(SidebarPanel, bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"
    bl_label = "Image to 3D"

    def draw(self, context):
        draw_main(self.layout, context, "image", draw_editor_image)


def draw_views(layout, context, source) -> None:
    """The views job for the panel's image (`source`: ("filepath" | "image", value) or
    None): its model folders' readiness, its options, Generate Views, the last sheet."""
    settings = context.scene.image_to_3d
    prefs = preferences()
    views = views_run.views_settings(settings)
    for ready, line in views_run.readiness_lines(prefs, views) if prefs else [(False, "Enable the add-on")]:
        for i, text in enumerate(_wrap(line, 48)):
            layout.label(text=text, icon=("CHECKMARK" if ready else "INFO") if i == 0 else "BLANK1")
    column = layout.column(align=True)
    for option in VIEWS.options:
        row = column.row()
        row.enabled = option.name != ELEVATION_NAME or not settings.views_estimate_elevation
        row.prop(settings, option.name)
    if not STATUS.running:
        row = layout.row()
        row.enabled = source is not None
        op = row.operator("image_to_3d.generate_views", icon="IMAGE_REFERENCE")
        if source is not None:
            setattr(op, source[0], source[1])
    if STATUS.last_views_image in bpy.data.images:
        layout.operator("image_to_3d.show_model_input", text="Show Views", icon="IMAGE_DATA").image = STATUS.last_views_image


def scene_views_source(settings):
    """The 3D Viewport's image for the views: the panel's file or Blender image."""
    if settings.source == "FILE":
        return ("filepath", settings.filepath) if settings.filepath else None
    return ("image", settings.image.name) if settings.image is not None else None


class ViewsPanel(SidebarPanel):
    """The views job: the sides and back of the object as Zero123-XL imagines them."""

    bl_label = "Views (Zero123-XL)"
    bl_options = {"DEFAULT_CLOSED"}


class VIEW3D_PT_image_to_3d_views(ViewsPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_parent_id = "VIEW3D_PT_image_to_3d"

    @classmethod
    def poll(cls, context):
        return context.scene.image_to_3d.source != "TEXT"

    def draw(self, context):
        draw_views(self.layout, context, scene_views_source(context.scene.image_to_3d))


class IMAGE_PT_image_to_3d_views(ViewsPanel, bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"
    bl_parent_id = "IMAGE_PT_image_to_3d"

    def draw(self, context):
        image = context.space_data.image
        draw_views(self.layout, context, ("image", image.name) if image is not None else None)


class BatchPanel(SidebarPanel):
    bl_label = "Batch"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.image_to_3d
        layout.prop(settings, "batch_source", expand=True)
        prompts = settings.batch_source == "PROMPTS"
        if prompts:
            layout.prop(settings, "batch_prompts_file")
        else:
            layout.prop(settings, "batch_directory")
            layout.prop(settings, "batch_recursive")
        layout.prop(settings, "batch_export")
        column = layout.column()
        column.enabled = settings.batch_export
        column.prop(settings, "batch_export_dir")
        column.prop(settings, "batch_export_format")
        if not STATUS.running:
            op = layout.operator("image_to_3d.batch", icon="FILE_FOLDER")
            if prompts:
                op.prompts_file = settings.batch_prompts_file
            else:
                op.directory = settings.batch_directory
                op.recursive = settings.batch_recursive
            op.export_dir = settings.batch_export_dir if settings.batch_export else ""
            op.export_format = settings.batch_export_format
        last = STATUS.last_batch
        if last is not None and not STATUS.running:
            for i, line in enumerate(_wrap(last.summary(), 48)):
                layout.label(text=line, icon="INFO" if i == 0 else "BLANK1")


class VIEW3D_PT_image_to_3d_batch(BatchPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_parent_id = "VIEW3D_PT_image_to_3d"


class IMAGE_PT_image_to_3d_batch(BatchPanel, bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"
    bl_parent_id = "IMAGE_PT_image_to_3d"


classes = (VIEW3D_PT_image_to_3d, VIEW3D_PT_image_to_3d_views, VIEW3D_PT_image_to_3d_batch, IMAGE_PT_image_to_3d,
           IMAGE_PT_image_to_3d_views, IMAGE_PT_image_to_3d_batch)
