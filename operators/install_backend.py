"""Install backend: a venv made with Blender's own Python, filled with pip, in the
extension's user folder; then the backend worker is started once to prove it works.

The work is done by backend_setup.InstallJob in a thread; this operator only starts it,
polls it from a window-manager timer (so the UI never waits on pip) and shows its lines.
"""

import sys
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from .. import backend_setup

ADDON = __package__.rpartition(".")[0]  # bl_ext.<repo>.image_to_3d
TIMER_SECONDS = 0.2

VARIANT_ITEMS = [
    ("AUTO", "Automatic", "CUDA where an NVIDIA GPU is found, the standard build on macOS, else CPU"),
    ("CPU", "CPU", "The CPU-only build of torch (smallest download, works everywhere)"),
    ("CUDA", "CUDA", "The NVIDIA GPU build of torch (a few GB)"),
    ("DEFAULT", "Standard", "The build PyPI gives for this system (on macOS: Apple MPS)"),
]


class _State:
    """What the panel shows; one install at a time per Blender session."""

    job = None  # backend_setup.InstallJob
    venv = None  # Path
    message = ""
    detected = None  # (variant, reason), found once: nvidia-smi is not free


STATE = _State()


def detected_variant():
    if STATE.detected is None:
        STATE.detected = backend_setup.detect_variant()
    return STATE.detected


def user_folder(name: str) -> Path:
    return Path(bpy.utils.extension_path_user(ADDON, path=name, create=True))


def _redraw():
    for window in getattr(bpy.context.window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type in {"PREFERENCES", "VIEW_3D", "IMAGE_EDITOR"}:
                area.tag_redraw()


def _finish(context) -> set:
    """Set the preference on success and say how it went."""
    job = STATE.job
    if job.state == "done":
        python = backend_setup.venv_python(STATE.venv)
        addon = context.preferences.addons.get(ADDON)
        if addon is not None:
            addon.preferences.python_path = str(python)
            context.preferences.is_dirty = True
        STATE.message = f"Backend installed: {python}"
        return {"FINISHED"}
    STATE.message = "Install cancelled" if job.state == "cancelled" else f"Install failed: {job.error}"
    return {"CANCELLED"}


class IMAGE_TO_3D_OT_install_backend(bpy.types.Operator):
    """Make a Python environment with torch and the backend's packages for the model worker"""

    bl_idname = "image_to_3d.install_backend"
    bl_label = "Install Backend"
    bl_options = {"REGISTER"}

    torch_build: EnumProperty(name="Torch Build", items=VARIANT_ITEMS, default="AUTO")
    wheel_dir: StringProperty(
        name="Offline Wheels", subtype="DIR_PATH", default="",
        description="Install only from this folder of wheel files (no network); leave empty to use PyPI",
    )

    @classmethod
    def poll(cls, context):
        return STATE.job is None or STATE.job.finished

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self, width=420)

    def draw(self, context):
        variant, reason = detected_variant()
        layout = self.layout
        layout.label(text=f"Detected: {variant.upper()} ({reason})")
        layout.prop(self, "torch_build")
        layout.prop(self, "wheel_dir")
        layout.label(text=f"Into: {user_folder('backend-venv')}")
        if not self.wheel_dir and not bpy.app.online_access:
            layout.label(text="Online access is off (Preferences > System > Network)", icon="ERROR")

    def _start(self):
        variant = detected_variant()[0] if self.torch_build == "AUTO" else self.torch_build.lower()
        STATE.venv = user_folder("backend-venv")
        wheel_dir = bpy.path.abspath(self.wheel_dir) if self.wheel_dir else None
        # Blender's own interpreter makes the venv (inside Blender, sys.executable is it)
        steps, notes = backend_setup.plan_install(
            STATE.venv, base_python=sys.executable, requirements=[backend_setup.REQUIREMENTS],
            constraints=backend_setup.CONSTRAINTS, variant=variant, wheel_dir=wheel_dir,
        )
        python = backend_setup.venv_python(STATE.venv)
        STATE.job = backend_setup.InstallJob(
            steps, log_path=user_folder("logs") / "install-backend.log",
            after=lambda: backend_setup.verify_worker(python),
        )
        for note in notes:
            STATE.job.lines.append(f"note: {note}")
        STATE.message = f"Installing the backend ({variant})"
        STATE.job.start()

    def execute(self, context):
        if not self.wheel_dir and not bpy.app.online_access:
            self.report({"ERROR"}, "Online access is off: allow it in Preferences > System > Network, "
                                   "or give a folder of wheels")
            return {"CANCELLED"}
        self._start()
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
        STATE.job.poll()  # lines are kept in job.lines for the panel
        _redraw()
        if not STATE.job.finished:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        result = _finish(context)
        self.report({"INFO"} if result == {"FINISHED"} else {"WARNING"}, STATE.message)
        return result


class IMAGE_TO_3D_OT_cancel_backend_install(bpy.types.Operator):
    """Stop the running backend install (pip is stopped; the partial environment stays)"""

    bl_idname = "image_to_3d.cancel_backend_install"
    bl_label = "Cancel Install"

    @classmethod
    def poll(cls, context):
        return STATE.job is not None and not STATE.job.finished

    def execute(self, context):
        STATE.job.cancel()
        return {"FINISHED"}


def draw_install_status(layout, context):
    """The installer's part of the preferences: progress, last pip line, log, hints."""
    job = STATE.job
    column = layout.column(align=True)
    if job is not None and not job.finished:
        done = max(job.step_index, 0)
        column.label(text=f"{job.current_title} ({done + 1}/{len(job.steps)})", icon="SORTTIME")
        last = job.lines[-1] if job.lines else ""
        column.label(text=last[-120:])
        column.operator(IMAGE_TO_3D_OT_cancel_backend_install.bl_idname, icon="CANCEL")
        return
    if STATE.message:
        failed = job is not None and job.state != "done"
        column.label(text=STATE.message, icon="ERROR" if failed else "CHECKMARK")
    if job is not None and job.log_path:
        column.label(text=f"Log: {job.log_path}")
    variant, reason = detected_variant()
    column.label(text=f"Install Backend will use the {variant.upper()} build of torch: {reason}", icon="INFO")
    column.label(text="Or use an existing Python: set Backend Python to an interpreter that has the "
                      "packages of requirements/backend.txt")
    # the model download lives beside it in the preferences
    from . import download_model

    download_model.draw_download_status(layout.column(align=True), context)


classes = (IMAGE_TO_3D_OT_install_backend, IMAGE_TO_3D_OT_cancel_backend_install)
