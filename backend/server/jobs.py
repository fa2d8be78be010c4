"""The job table of the HTTP front: one record per submitted job, kept in the front.

The front is the only process that sees every job, so status lives here and not in the
replicas: a replica streams its job's events back over the call that runs it (see
runner.py), and any number of replicas can serve one table. Everything here runs on the
front's event loop; nothing imports Ray.
"""

import asyncio
import secrets
import time
from dataclasses import dataclass, field

import numpy as np

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
TERMINAL = (DONE, FAILED, CANCELLED)


class QueueFull(Exception):
    pass


class UnknownJob(Exception):
    pass


@dataclass
class StoredResult:
    """A finished job's mesh, kept until the client fetches it or it expires."""

    arrays: dict  # vertices, faces, colors, prepared_image (numpy, the worker protocol's names); views: views, ...
    fields: dict  # device, timings, notes (the protocol's result fields; a views job's: view_ids, poses, ...)

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.arrays.values())


@dataclass(eq=False)
class Job:
    job_id: str
    settings: dict
    image: object  # encoded file bytes or a pixel array (None for a text job); dropped when the job ends
    prompt: str | None = None  # a text job's prompt
    kind: str = "mesh"  # "mesh" (generate) or "views" (generate_views: the views job)
    created: float = field(default_factory=time.time)
    state: str = QUEUED
    stage: str | None = None
    fraction: float = 0.0
    started: float | None = None
    finished: float | None = None
    finished_monotonic: float | None = None
    attempts: int = 0
    replica: str | None = None
    error: tuple | None = None  # (code, message)
    result: StoredResult | None = None
    cancel_requested: bool = False
    detail: str | None = None  # the latest progress in words (a long job's iteration and loss)
    preview: dict | None = None  # the latest preview: stage, iteration, image (H, W, 3) uint8, number
    version: int = 0  # bumped on every change; long-poll clients pass the one they saw
    task: asyncio.Task | None = None  # the runner task driving this job
    stream: object = None  # the runner's streaming call to a replica, while there is one
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # -- changes (the runner calls these)

    def _touch(self):
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    def mark_running(self, replica: str | None):
        if self.state in TERMINAL:
            return
        if self.started is None:
            self.started = time.time()
        self.state, self.replica = RUNNING, replica
        self._touch()

    def mark_progress(self, stage: str, fraction: float, detail: str | None = None):
        if self.state in TERMINAL:
            return
        self.state, self.stage, self.fraction, self.detail = RUNNING, stage, float(fraction), detail
        self._touch()

    def mark_preview(self, stage: str, iteration: int, image):
        """Keep the latest preview only (GET /v1/jobs/{id}/preview); its number counts them."""
        if self.state in TERMINAL:
            return
        number = self.preview["number"] + 1 if self.preview else 1
        self.preview = {"stage": stage, "iteration": int(iteration), "image": image, "number": number}
        self._touch()

    def mark_retry(self):
        """A replica died under the job; it goes back to the queue for another try."""
        self.state, self.stage, self.fraction, self.replica, self.detail = QUEUED, None, 0.0, None, None
        self._touch()

    def finish(self, state: str, *, result: StoredResult | None = None, error: tuple | None = None):
        if self.state in TERMINAL:
            return
        self.state, self.result, self.error = state, result, error
        self.finished, self.finished_monotonic = time.time(), time.monotonic()
        self.image = None  # the upload can be large; nothing needs it any more
        self._touch()

    # -- reading

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    async def wait_for_change(self, since: int | None, timeout: float):
        """Return when the version differs from `since`, or after `timeout` seconds."""
        if since is None or since != self.version or self.is_terminal or timeout <= 0:
            return
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def status(self, result_ttl: float) -> dict:
        info = {
            "job_id": self.job_id,
            "state": self.state,
            "stage": self.stage,
            "fraction": self.fraction,
            "detail": self.detail,
            # the latest preview's facts; its image: GET /v1/jobs/{id}/preview
            "preview": None if self.preview is None else {
                key: self.preview[key] for key in ("number", "stage", "iteration")},
            "version": self.version,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "expires": self.finished + result_ttl if self.finished is not None else None,
            "attempts": self.attempts,
            "replica": self.replica,
            "error": {"code": self.error[0], "message": self.error[1]} if self.error else None,
        }
        if self.kind != "mesh":
            info["kind"] = self.kind
        if self.result is not None:
            info["timings"] = self.result.fields.get("timings", {})
            info["notes"] = self.result.fields.get("notes", [])
            if "views" in self.result.arrays:
                info["views"] = int(len(self.result.arrays["views"]))
            else:
                info["vertices"] = int(len(self.result.arrays["vertices"]))
                info["faces"] = int(len(self.result.arrays["faces"]))
        return info


class JobTable:
    """All jobs the front knows, with the limits that keep its memory bounded."""

    def __init__(self, max_active: int, result_ttl: float, max_result_bytes: int):
        self.max_active = max_active
        self.result_ttl = result_ttl
        self.max_result_bytes = max_result_bytes
        self._jobs: dict[str, Job] = {}

    def create(self, settings: dict, image, prompt: str | None = None, kind: str = "mesh") -> Job:
        if self.count_active() >= self.max_active:
            raise QueueFull(self.max_active)
        job = Job(secrets.token_hex(16), settings, image, prompt, kind)  # unguessable, also between clients
        self._jobs[job.job_id] = job
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(job_id)
        return job

    def remove(self, job_id: str) -> Job:
        job = self.get(job_id)
        del self._jobs[job_id]
        return job

    def jobs(self) -> list:
        return list(self._jobs.values())

    def count_active(self) -> int:
        return sum(1 for job in self._jobs.values() if not job.is_terminal)

    def counts(self) -> dict:
        counts = {QUEUED: 0, RUNNING: 0, "finished": 0}
        for job in self._jobs.values():
            counts["finished" if job.is_terminal else job.state] += 1
        return counts

    def sweep(self, now: float | None = None) -> int:
        """Forget ended jobs past their time, then the oldest ones while results take too much."""
        now = time.monotonic() if now is None else now
        ended = sorted((j for j in self._jobs.values() if j.is_terminal), key=lambda j: j.finished_monotonic)
        dropped = 0
        for job in ended:
            if now - job.finished_monotonic > self.result_ttl:
                del self._jobs[job.job_id]
                dropped += 1
        stored = sum(j.result.nbytes for j in self._jobs.values() if j.result is not None)
        for job in ended:
            if stored <= self.max_result_bytes:
                break
            if job.job_id in self._jobs and job.result is not None:
                stored -= job.result.nbytes
                del self._jobs[job.job_id]
                dropped += 1
        return dropped


def result_arrays(vertices, faces, colors, prepared_image, uvs=None, base_color=None, normal_map=None) -> dict:
    """The result arrays with the dtypes the worker protocol promises (the mesh stage's
    UVs and textures only when the job made them)."""
    arrays = {
        "vertices": np.ascontiguousarray(vertices, dtype=np.float32),
        "faces": np.ascontiguousarray(faces, dtype=np.int32),
        "colors": np.ascontiguousarray(colors, dtype=np.uint8),
        "prepared_image": np.ascontiguousarray(prepared_image, dtype=np.uint8),
    }
    optional = {"uvs": (uvs, np.float32), "base_color": (base_color, np.uint8), "normal_map": (normal_map, np.uint8)}
    for name, (array, dtype) in optional.items():
        if array is not None:
            arrays[name] = np.ascontiguousarray(array, dtype=dtype)
    return arrays
