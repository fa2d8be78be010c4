"""Install backend: a venv made with Blender's own Python, filled with pip, in the
extension's user folder; then the backend worker is started once to prove it works.

The work is done by backend.setup.installer.StepRunner in a thread; this operator only
starts it and follows it from a timer (operators/modal.py), so the UI never waits on pip.
"""

import sys

import bpy
from bpy.props import EnumProperty, StringProperty

from ..backend.setup import installer
from ..blender.addon import preferences, user_folder
from .modal import BackgroundWorkOperator, step_runner_cancel_operator

VARIANT_ITEMS = [
    ("AUTO", "Automatic", "CUDA where an NVIDIA GPU is found, the standard build on macOS, else CPU"),
    ("CPU", "CPU", "The CPU-only build of torch (smallest download, works everywhere)"),
    ("CUDA", "CUDA", "The NVIDIA GPU build of torch (a few GB)"),
    ("DEFAULT", "Standard", "The build PyPI gives for this system (on macOS: Apple MPS)"),
]


class _State:
    """What the preferences show; one install at a time per Blender session."""

    runner = None  # installer.StepRunner
    venv = None  # Path
    message = ""
    detected = None  # (variant, reason), found once: nvidia-smi is not free


STATE = _State()


def detected_variant():
    if STATE.detected is None:
        STATE.detected = installer.detect_variant()
    return STATE.detected


class IMAGE_TO_3D_OT_install_backend(BackgroundWorkOperator, bpy.types.Operator):
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
        return STATE.runner is None or STATE.runner.finished

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

    def execute(self, context):
        # The dialog's OK lands here too: follow the install from a timer, unless nothing can.
        if bpy.app.background or context.window is None:
            return super().execute(context)
        return super().invoke(context, None)

    def begin(self, context) -> bool:
        if not self.wheel_dir and not bpy.app.online_access:
            self.report({"ERROR"}, "Online access is off: allow it in Preferences > System > Network, "
                                   "or give a folder of wheels")
            return False
        variant = detected_variant()[0] if self.torch_build == "AUTO" else self.torch_build.lower()
        STATE.venv = user_folder("backend-venv")
        wheel_dir = bpy.path.abspath(self.wheel_dir) if self.wheel_dir else None
        # Blender's own interpreter makes the venv (inside Blender, sys.executable is it)
        steps, notes = installer.plan_install(
            STATE.venv, base_python=sys.executable, requirements=[installer.REQUIREMENTS],
            constraints=installer.CONSTRAINTS, variant=variant, wheel_dir=wheel_dir,
        )
        python = installer.venv_python(STATE.venv)
        STATE.runner = installer.StepRunner(
            steps, log_path=user_folder("logs") / "install-backend.log",
            after=lambda: installer.verify_worker(python),
        )
        for note in notes:
            STATE.runner.lines.append(f"note: {note}")
        STATE.message = f"Installing the backend ({variant})"
        STATE.runner.start()
        return True

    def step(self, context) -> bool:
        STATE.runner.poll()  # lines are kept in runner.lines for the preferences
        return STATE.runner.finished

    def stop(self, context) -> None:
        STATE.runner.cancel()

    def end(self, context):
        """Set the preference on success and say how it went."""
        runner = STATE.runner
        if runner.state == "done":
            python = installer.venv_python(STATE.venv)
            prefs = preferences()
            if prefs is not None:
                prefs.python_path = str(python)
                context.preferences.is_dirty = True
            STATE.message = f"Backend installed: {python}"
            self.report({"INFO"}, STATE.message)
            return {"FINISHED"}
        STATE.message = "Install cancelled" if runner.state == "cancelled" else f"Install failed: {runner.error}"
        self.report({"ERROR"} if bpy.app.background else {"WARNING"}, STATE.message)
        return {"CANCELLED"}


IMAGE_TO_3D_OT_cancel_backend_install = step_runner_cancel_operator(
    "IMAGE_TO_3D_OT_cancel_backend_install", "image_to_3d.cancel_backend_install", "Cancel Install",
    "Stop the running backend install (pip is stopped; the partial environment stays)", STATE)


def draw_install_status(layout):
    """The installer's part of the preferences: progress, last pip line, log, hints."""
    runner = STATE.runner
    if runner is not None and not runner.finished:
        done = max(runner.step_index, 0)
        layout.label(text=f"{runner.current_title} ({done + 1}/{len(runner.steps)})", icon="SORTTIME")
        last = runner.lines[-1] if runner.lines else ""
        layout.label(text=last[-120:])
        layout.operator(IMAGE_TO_3D_OT_cancel_backend_install.bl_idname, icon="CANCEL")
        return
    if STATE.message:
        failed = runner is not None and runner.state != "done"
        layout.label(text=STATE.message, icon="ERROR" if failed else "CHECKMARK")
    if runner is not None and runner.log_path:
        layout.label(text=f"Log: {runner.log_path}")
    variant, reason = detected_variant()
    layout.label(text=f"Install Backend will use the {variant.upper()} build of torch: {reason}", icon="INFO")
    layout.label(text="Or use an existing Python: set Backend Python to an interpreter that has the "
                      "packages of requirements/backend.txt")


classes = (IMAGE_TO_3D_OT_install_backend, IMAGE_TO_3D_OT_cancel_backend_install)
