"""What the job operators (generate, batch, generate views) share: one job at a time,
its state in blender/job_state.STATUS, the panel's Cancel button, errors reported and
kept for the panel; and, for an operator that runs a single job, following that run
(blender/job_run.JobRun) until it ends."""

from ..backend.bridge.errors import Cancelled
from ..blender.job_state import STATUS
from .modal import BackgroundWorkOperator


class JobOperator(BackgroundWorkOperator):
    """Mixin for the operators that run jobs through the session's job client."""

    @classmethod
    def poll(cls, context):
        if STATUS.running:
            cls.poll_message_set("A job is already running")
            return False
        return True

    def stop_requested(self) -> bool:
        return STATUS.cancel_requested

    def fail(self, message: str) -> None:
        STATUS.last_error = message
        self.report({"ERROR"}, message)


class OneJobOperator(JobOperator):
    """Mixin for an operator whose work is one run: `begin` makes it and calls `follow`,
    `end` calls `ended` and turns the result into what the user sees."""

    _run = None

    def follow(self, run) -> bool:
        """Start showing `run` (started) as the running job."""
        self._run = run
        STATUS.running, STATUS.cancel_requested = True, False
        STATUS.label, STATUS.fraction, STATUS.last_error = run.describe(), 0.0, ""
        return True

    def step(self, context) -> bool:
        if self._run.poll():  # non-blocking: only reads what the worker sent
            return True
        STATUS.label, STATUS.fraction = self._run.describe(), self._run.fraction
        return False

    def stop(self, context) -> None:
        self._run.cancel()

    def abandon(self, context) -> None:
        if self._run is not None:
            self._run.cancel()
            self._run = None
        STATUS.running = False

    def status_text(self) -> str:
        return f"Image to 3D: {STATUS.label}  (Esc to cancel)"

    def progress_line(self) -> tuple:
        return self._run.stage, f"image_to_3d: {self._run.describe()}"

    def ended(self):
        """The run that ended, when it has a result; None when it failed or was cancelled
        (reported here)."""
        done, self._run = self._run, None
        STATUS.running, STATUS.label = False, ""
        if done.error is None:
            return done
        if isinstance(done.error, Cancelled):
            self.report({"WARNING"}, "Cancelled")
        else:
            self.fail(done.error.message)
        return None
