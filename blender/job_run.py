"""Following one submitted job through the session's job client (a WorkerClient or a
ServerClient): its events, its progress as one overall fraction, cancel. The kinds of
run (runs.GenerateRun, views_run.ViewsRun) say how they submit and what their progress
looks like; none touches the scene before the job has ended.
"""

import time

from ..backend.bridge.errors import BackendError, Cancelled, error_from


def overall_fraction(stage: str, fraction: float, stages, weights: dict) -> float:
    """0..1 over the whole job from one stage's fraction; `stages`: the job's own stages
    in order, `weights`: each stage's rough share of a job's time."""
    total = sum(weights[name] for name in stages)
    done = 0.0
    for name in stages:
        if name == stage:
            return (done + weights[name] * max(0.0, min(1.0, fraction))) / total
        done += weights[name]
    return done / total


class JobRun:
    """One job's state as its events arrive: stage, overall fraction, result or error."""

    def __init__(self, client):
        self.client = client
        self.job_id = None
        self.stage = "queued"
        self.fraction = 0.0
        self.result = None
        self.error: BackendError | None = None
        self.started = 0.0
        self.seconds = 0.0

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None

    def submit(self):
        """Send the job to the client; its job id."""
        raise NotImplementedError

    def progressed(self, event) -> None:
        """A progress event: update stage and fraction (and any detail)."""
        raise NotImplementedError

    def previewed(self, event) -> None:
        """A preview event (long jobs): kinds that show previews keep it."""

    def start(self):
        self.started = time.perf_counter()
        self.stage = "starting"
        self.job_id = self.submit()
        return self

    def poll(self) -> bool:
        """Read pending events without blocking; True once the job has ended."""
        if self.done:
            return True
        for event in self.client.poll():
            if event.job_id not in (None, self.job_id):
                continue  # late events of an earlier, cancelled job
            if event.kind == "progress":
                self.progressed(event)
            elif event.kind == "preview":
                self.previewed(event)
            elif event.kind == "result":
                self.result = event.result
            elif event.kind == "error":
                self.error = error_from(event.code or BackendError.code, event.message or "the worker failed")
            elif event.kind == "cancelled":
                self.error = Cancelled()
            if self.done:
                self.seconds = time.perf_counter() - self.started
                return True
        return False

    def cancel(self) -> None:
        if self.job_id is not None and not self.done:
            self.client.cancel(self.job_id)
        self.error = self.error or Cancelled()
