"""Driving one job through a replica: the streaming handle call, cancel, retry and timeouts.

The front calls the deployment's `generate` with `stream=True` and applies each event to
the job record. Failures that are not the job's own become error codes with sentences:
a replica that dies under a job (process killed, out of memory, node lost) retries the
job once on another replica, then fails it with `worker_failed`.
"""

import asyncio
import logging

from ray.exceptions import RayActorError, TaskCancelledError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError

from .jobs import CANCELLED, DONE, FAILED, Job, StoredResult

log = logging.getLogger("image_to_3d.server")

REPLICA_DIED = (RayActorError, ReplicaUnavailableError)  # ActorDiedError, ActorUnavailableError...


class ReplicaPool:
    """The model deployment as the front sees it."""

    def __init__(self, handle, retries: int = 1, idle_timeout: float = 600.0):
        self._handle = handle
        self.retries = retries
        self.idle_timeout = idle_timeout  # seconds a job may wait or run without any event

    def start(self, job: Job):
        job.task = asyncio.get_running_loop().create_task(self.execute(job), name=f"job-{job.job_id}")

    def cancel(self, job: Job):
        """Ask for the job to stop; its task records the outcome."""
        job.cancel_requested = True
        stream = getattr(job, "stream", None)
        if stream is not None:
            try:
                stream.cancel()
            except Exception:  # noqa: BLE001 (cancel re-raises a call's own failure, e.g. back-pressure)
                pass
        elif job.task is not None and not job.task.done():
            job.task.cancel()  # not handed to Serve yet

    async def describe(self) -> dict:
        return await self._handle.describe.remote()

    async def execute(self, job: Job):
        try:
            await self._run_attempts(job)
        except asyncio.CancelledError:
            job.finish(CANCELLED, error=("cancelled", "cancelled by the user"))
        except Exception as exc:
            log.exception("job %s: internal error in the front", job.job_id)
            job.finish(FAILED, error=("backend_error", f"internal error in the model server: {exc.__class__.__name__}"))
        finally:
            job.stream = None

    async def _run_attempts(self, job: Job):
        for attempt in range(1 + self.retries):
            job.attempts = attempt + 1
            try:
                await self._run_once(job)
                return
            except REPLICA_DIED as exc:
                if job.cancel_requested:
                    job.finish(CANCELLED, error=("cancelled", "cancelled by the user"))
                    return
                log.warning("job %s: the replica died (attempt %d): %s", job.job_id, job.attempts,
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                if attempt < self.retries:
                    job.mark_retry()
        tries = "twice" if self.retries == 1 else f"{self.retries + 1} times"
        job.finish(FAILED, error=(
            "worker_failed",
            "the model server's process running this job stopped (killed, out of memory or "
            + (f"a crash), {tries}: the job may be too large for the server, e.g. lower the resolution"
               if self.retries else "a crash): try again"),
        ))

    async def _run_once(self, job: Job):
        handle = self._handle.options(stream=True)
        if job.kind == "views":
            job.stream = handle.generate_views.remote(job.job_id, job.settings, job.image)
        else:
            job.stream = handle.generate.remote(job.job_id, job.settings, job.image, job.prompt)
        if job.cancel_requested:  # asked while this call was being made
            self.cancel(job)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(job.stream.__anext__(), self.idle_timeout)
                except StopAsyncIteration:
                    break
                if self._apply(job, event):
                    return
            raise RuntimeError("the replica's event stream ended without a result")
        except (TaskCancelledError, asyncio.CancelledError):  # RequestCancelledError is a TaskCancelledError
            if not job.cancel_requested:
                raise
            job.finish(CANCELLED, error=("cancelled", "cancelled by the user"))
        except asyncio.TimeoutError:
            self.cancel(job)
            where = f"in stage {job.stage}" if job.stage else "while waiting for a free replica"
            job.finish(FAILED, error=("timeout", f"the job made no progress for {self.idle_timeout:g} s {where}"))
        except BackPressureError:
            job.finish(FAILED, error=("server_busy", "the model server's queue is full: try again in a moment"))
        except DeploymentUnavailableError:
            job.finish(FAILED, error=("worker_failed", "the model server has no running model replica: check its log"))

    @staticmethod
    def _apply(job: Job, event: dict) -> bool:
        """Apply one replica event; True when it ended the job."""
        kind = event.get("event")
        if kind == "started":
            job.mark_running(event.get("replica"))
        elif kind == "progress":
            job.mark_progress(event["stage"], event["fraction"], event.get("detail"))
        elif kind == "preview":
            job.mark_preview(event["stage"], event["iteration"], event["image"])
        elif kind == "result":
            fields = {"device": event["device"], "timings": event["timings"], "notes": event.get("notes", []),
                      **event.get("fields", {})}  # a views job's view_ids, poses, ...
            job.finish(DONE, result=StoredResult(event["arrays"], fields))
            return True
        elif kind == "error":
            job.finish(CANCELLED if event["code"] == "cancelled" else FAILED, error=(event["code"], event["message"]))
            return True
        return False
