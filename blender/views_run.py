"""The views job from Blender (registry.VIEWS: Zero123-XL's 40 views of the object in an
image): its model folders from the preferences, its options from the panel, one run
through the session's job client, and the contact sheet as a packed Blender image.

The run follows the job without blocking (the operator's timer polls it); the image is
made only once the views have arrived, so a failed or cancelled job leaves nothing.
"""

import bpy

from ..backend.bridge.settings import ViewsSettings
from ..backend.families.registry import VIEWS
from . import mesh_builder, worker_session
from .job_run import JobRun, overall_fraction

WEIGHTS = {stage.name: stage.weight for stage in VIEWS.stages}


def views_settings(panel) -> ViewsSettings:
    """The views job's options as the panel holds them (scene_settings: one property each)."""
    return ViewsSettings(**{option.name: getattr(panel, option.name) for option in VIEWS.options})


def slots_needed(settings) -> tuple:
    """The model slots a views job with these settings needs (LoFTR only to estimate)."""
    optional = set(VIEWS.optional_slots)
    estimate = settings.views_estimate_elevation
    return tuple(slot for slot in VIEWS.all_slots() if estimate or slot.identifier not in optional)


def views_model(prefs, settings) -> dict:
    """submit_views' model: {slot id: folder} of the folders the job needs."""
    return {slot.identifier: worker_session.slot_path(prefs, slot) for slot in slots_needed(settings)}


def setup_problem(prefs, settings) -> str | None:
    """Why no views job can start with these preferences, or None."""
    if worker_session.on_server(prefs):
        return worker_session.setup_problem(prefs)
    unset = [slot.label for slot in slots_needed(settings) if not worker_session.slot_path(prefs, slot)]
    if unset:
        return f"No {' or '.join(unset)} folder: set it in the add-on preferences (or Download it there)"
    return None


def readiness_lines(prefs, settings) -> list:
    """(ready, line) per views model folder, for the panel (a server has its own)."""
    if worker_session.on_server(prefs):
        problem = worker_session.setup_problem(prefs)
        return [(problem is None, problem or "Views run on the server")]
    lines = []
    for slot in VIEWS.all_slots():
        ready, message = worker_session.model_readiness(prefs, VIEWS.identifier, slot)
        if slot not in slots_needed(settings) and not ready:
            ready, message = True, f"{slot.label}: not needed with the elevation given"
        lines.append((ready, message if message != "Ready" else f"{slot.label}: ready"))
    return lines


class ViewsRun(JobRun):
    """Submit one image's views job, follow its events, hand back the ViewsJobResult or the error."""

    def __init__(self, image, settings: ViewsSettings, client=None, prefs=None):
        """image: an image_source.ImageInput."""
        from ..backend.zero123.declaration import job_stages

        super().__init__(client or worker_session.client())
        self.image, self.settings = image, settings
        self.stages = job_stages(settings)
        self.model = {} if worker_session.on_server(prefs) else {"model": views_model(prefs, settings)}

    def submit(self):
        return self.client.submit_views(self.settings, **self.image.submit_kwargs(), **self.model)

    def progressed(self, event) -> None:
        self.stage = event.stage or self.stage
        self.fraction = overall_fraction(event.stage, event.fraction or 0.0, self.stages, WEIGHTS)

    def describe(self) -> str:
        return f"{self.image.name} views: {self.stage.replace('_', ' ')} {self.fraction * 100:.0f}%"


def show_contact_sheet(context, name: str, result) -> bpy.types.Image:
    """The contact sheet as a packed image "<name> views" (kept with the .blend), shown
    in every Image Editor of the window. Replaces an earlier sheet of the same name."""
    image_name = f"{name} views"
    height, width = result.contact_sheet.shape[:2]
    old = bpy.data.images.get(image_name)
    image = bpy.data.images.new(image_name + " (new)", width, height, alpha=False)
    try:
        mesh_builder.store_pixels(image, result.contact_sheet)
        image["image_to_3d_views_elevation"] = float(result.elevation)
        image["image_to_3d_views_estimated"] = bool(result.polar_estimated)
        image["image_to_3d_views_seed"] = int(result.poses.get("seed", 0))
    except BaseException:
        bpy.data.images.remove(image)  # nothing half-made
        raise
    if old is not None:
        old.user_remap(image)
        bpy.data.images.remove(old)
    image.name = image_name
    image.use_fake_user = True  # nothing in the scene uses it: without this a save drops it
    screen = getattr(context, "screen", None)
    for area in (screen.areas if screen else ()):
        if area.type == "IMAGE_EDITOR":
            area.spaces.active.image = image
    return image
