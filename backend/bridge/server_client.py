"""ServerClient: runs jobs on a model server, with WorkerClient's interface.

Standard library + numpy only, so Blender's own Python imports it. submit() returns at
once with a job id of ours; a thread per job uploads the image, follows the job by
long-polling its status (progress arrives within a round trip), fetches the result and
deletes the job on the server. Everything it learns becomes the same Events a
WorkerClient produces (accepted, progress, preview, log, result, error, cancelled), so
blender/runs.py, the CLI and the headless script need only choose which client to build.
"""

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import protocol
from .errors import BackendError, InputImageError
from .image_files import checked_path
from .job_client import JobEvents, JobResult, generate_request, views_job_result, views_request
from .server_api import ServerApi

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"


@dataclass
class RemoteJob:
    """A job of ours: its request until it is sent, then the server's id for it."""

    request: object  # protocol.Generate (image bytes or pixels, or a prompt) or protocol.GenerateViews
    cancel_asked: threading.Event = field(default_factory=threading.Event)
    server_id: str | None = None


class ServerClient(JobEvents):
    poll_wait = 0.5  # seconds one status request may wait for a change: bounds how late a cancel is sent
    close_grace = 5.0  # seconds close() waits for running jobs to be cancelled

    def __init__(self, url: str, token: str, *, token_source: str = "the access token", ca_file: str | None = None,
                 timeout: float = 30.0):
        """url: http(s)://host:port of `python -m backend serve`; token: its access token
        (token_source names where it came from, for the message when it is refused)."""
        self.api = ServerApi(url, token, token_source=token_source, ca_file=ca_file, timeout=timeout)
        self._init_events()
        self._jobs: dict[str, RemoteJob] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.api.url

    def submit(self, settings, *, image_path=None, image_bytes=None, image_pixels=None, prompt=None) -> str:
        """Start a job; returns at once. A file is read here and sent as its bytes (the
        server reads no paths); a bad path raises InputImageError now, as a worker says."""
        return self._start(generate_request(settings, image_path=image_path, image_bytes=image_bytes,
                                            image_pixels=image_pixels, prompt=prompt))

    def submit_views(self, settings, *, image_path=None, image_bytes=None, image_pixels=None) -> str:
        """Start a views job (bridge/settings.py ViewsSettings) on the server's views
        models; its result event carries a ViewsJobResult."""
        return self._start(views_request(settings, image_path=image_path, image_bytes=image_bytes,
                                         image_pixels=image_pixels))

    def _start(self, request) -> str:
        if request.image_path is not None:
            path = checked_path(Path(request.image_path))
            try:
                request.image_bytes = np.frombuffer(path.read_bytes(), dtype=np.uint8)
            except OSError as exc:
                raise InputImageError(f"{path} cannot be read: {exc.strerror or exc}") from None
            request.image_path = None
        job = RemoteJob(request)
        thread = threading.Thread(target=self._follow, args=(job,), name=f"server-job-{request.job_id}", daemon=True)
        with self._lock:
            self._jobs[request.job_id] = job
            self._threads[request.job_id] = thread
        thread.start()
        return request.job_id

    def cancel(self, job_id: str):
        """Ask the server to stop the job; its end arrives as a `cancelled` event."""
        job = self._jobs.get(job_id)
        if job is not None:
            job.cancel_asked.set()

    def health(self) -> dict:
        return self.api.health()

    def ping(self) -> bool:
        """True when the server answers and has a running model replica."""
        try:
            return self.api.health().get("status") == "ok"
        except BackendError:
            return False

    def close(self, grace: float | None = None):
        """Cancel the jobs still running and wait (a few seconds) for their threads."""
        with self._lock:
            jobs, threads = list(self._jobs.values()), list(self._threads.values())
        for job in jobs:
            job.cancel_asked.set()
        for thread in threads:
            thread.join(self.close_grace if grace is None else grace)

    # ------------------------------------------------------------ one job, on its own thread

    def _follow(self, job: RemoteJob):
        job_id = job.request.job_id
        try:
            status = self.api.submit(job.request)
            job.request = None  # the upload can be large; nothing needs it any more
            job.server_id = status["job_id"]
            self._watch(job_id, job, status)
        except BackendError as exc:
            self._emit("error", job_id, code=exc.code, message=exc.message)
        except Exception as exc:  # noqa: BLE001 (a bug here must not leave run() waiting forever)
            self._emit("error", job_id, code=BackendError.code, message=f"internal error in the server client: {exc!r}")
        finally:
            if job.server_id is not None:
                try:
                    self.api.forget(job.server_id)
                except BackendError:
                    pass  # the server forgets it by itself after its result time
            self.api.close()
            with self._lock:
                self._jobs.pop(job_id, None)
                self._threads.pop(job_id, None)

    def _watch(self, job_id: str, job: RemoteJob, status: dict):
        """Long-poll the job until it ends, emitting what changed."""
        cancel_sent, accepted, shown, attempts, previews = False, False, None, 1, 0
        while True:
            state = status["state"]
            if state == RUNNING and not accepted:
                accepted = True
                self._emit("accepted", job_id)
            if status.get("attempts", 1) > attempts:
                attempts = status["attempts"]
                self._emit("log", job_id, message="the server's model process stopped under this job: running it again")
            if status.get("stage") and (status["stage"], status["fraction"], status.get("detail")) != shown:
                shown = (status["stage"], status["fraction"], status.get("detail"))
                self._emit("progress", job_id, stage=shown[0], fraction=float(shown[1]), detail=shown[2])
            preview = status.get("preview")
            if state == RUNNING and preview and preview["number"] > previews:  # a long job's latest picture
                previews = preview["number"]
                self._emit_preview(job_id, job.server_id)
            if state == DONE:
                event = self.api.result(job.server_id)
                views = isinstance(event, protocol.ViewsResult)
                self._emit("result", job_id, result=views_job_result(event) if views else job_result(event))
                return
            if state == CANCELLED:
                self._emit("cancelled", job_id, message="cancelled")
                return
            if state == FAILED:
                error = status.get("error") or {"code": BackendError.code, "message": "the job failed on the server"}
                self._emit("error", job_id, code=error["code"], message=error["message"])
                return
            if job.cancel_asked.is_set() and not cancel_sent:
                cancel_sent = True
                status = self.api.cancel(job.server_id)
                continue
            status = self.api.status(job.server_id, since=status["version"], wait=self.poll_wait)

    def _emit_preview(self, job_id: str, server_id: str):
        try:
            event = self.api.preview(server_id)
        except BackendError:  # a preview is a courtesy: the job goes on without it
            return
        self._emit("preview", job_id, stage=event.stage, iteration=event.iteration, image=event.image)


def job_result(event) -> JobResult:
    """A protocol.Result from the server as the JobResult a local worker's job gives."""
    return JobResult(event.vertices, event.faces, event.colors, event.prepared_image, dict(event.timings),
                     event.device, [str(note) for note in event.notes], event.uvs, event.base_color, event.normal_map)
