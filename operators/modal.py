"""The one way this add-on's operators run work that takes long: started, then followed
from a window-manager timer that never waits, so Blender never freezes.

An operator mixes in `BackgroundWorkOperator` and says how to begin, step, stop and end
its work; this class does the rest: the timer, Esc and the panel's Cancel button, the
status bar, redraws, Blender closing the window under it, and the blocking loop used in
background mode and from scripts (where there is no event loop to come back to).
"""

import time

import bpy

from ..blender.addon import TIMER_SECONDS, redraw_ui

BLOCKING_POLL_SECONDS = 0.05
PROGRESS_PRINT_SECONDS = 2.0  # background mode prints a line per stage, or this often


class BackgroundWorkOperator:
    """Mixin for bpy.types.Operator; subclasses provide the hooks below."""

    _timer = None

    # -- hooks

    def begin(self, context) -> bool:
        """Start the work; False (having reported why) when it could not start."""
        raise NotImplementedError

    def step(self, context) -> bool:
        """Look at the work without waiting; True once it is over."""
        raise NotImplementedError

    def stop(self, context) -> None:
        """Esc or the Cancel button: ask the work to stop (it may finish a last piece)."""

    def end(self, context) -> set:
        """Turn the finished work into its result and report; {"FINISHED"} or {"CANCELLED"}."""
        raise NotImplementedError

    def abandon(self, context) -> None:
        """Blender ends the operator early (window or file closed, Ctrl+C in a script)."""
        self.stop(context)

    def interrupted(self, context) -> set:
        """Ctrl+C while blocking (background mode, scripts): stop, say so, keep what is done."""
        self.abandon(context)
        self.report({"ERROR"}, "Interrupted (Ctrl+C)")
        return {"CANCELLED"}

    def stop_requested(self) -> bool:
        """True when something besides Esc asks to stop (the panel's Cancel button)."""
        return False

    def status_text(self) -> str | None:
        """The status bar's line while the work runs."""
        return None

    def progress_line(self) -> tuple | None:
        """(key, text) printed in background mode whenever key changes, or every few seconds."""
        return None

    # -- what Blender calls

    def execute(self, context):
        """Blocking: background mode, scripts and redo."""
        if not self.begin(context):
            return {"CANCELLED"}
        last_key, last_time = object(), 0.0
        try:
            while not self.step(context):
                line = self.progress_line() if bpy.app.background else None
                if line is not None and (line[0] != last_key or time.monotonic() - last_time >= PROGRESS_PRINT_SECONDS):
                    last_key, last_time = line[0], time.monotonic()
                    print(line[1], flush=True)
                time.sleep(BLOCKING_POLL_SECONDS)
        except KeyboardInterrupt:
            return self.interrupted(context)
        except BaseException:  # don't leave the work running
            self.abandon(context)
            raise
        return self.end(context)

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if not self.begin(context):
            return {"CANCELLED"}
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(TIMER_SECONDS, window=context.window)
        window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        stopping = event.type == "ESC" or self.stop_requested()
        if stopping:
            self.stop(context)
        if event.type != "TIMER" and not stopping:
            return {"PASS_THROUGH"}
        if not self.step(context):
            text = self.status_text()
            if text:
                context.workspace.status_text_set(text)
            redraw_ui(context)
            return {"PASS_THROUGH"}
        self._remove_timer(context)
        context.workspace.status_text_set(None)
        redraw_ui(context)
        return self.end(context)

    def cancel(self, context):
        self._remove_timer(context)
        self.abandon(context)

    def _remove_timer(self, context):
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None


def step_runner_cancel_operator(class_name: str, bl_idname: str, label: str, description: str, state):
    """The Cancel button of a background install or download: stops `state.runner` (a
    backend.setup.installer.StepRunner) while it runs."""

    def poll(cls, context):
        return state.runner is not None and not state.runner.finished

    def execute(self, context):
        state.runner.cancel()
        return {"FINISHED"}

    return type(class_name, (bpy.types.Operator,), {
        "__doc__": description, "bl_idname": bl_idname, "bl_label": label,
        "poll": classmethod(poll), "execute": execute,
    })
