"""What both job clients share: Event, JobResult, the generate and generate_views
requests, poll(), run() and run_views().

WorkerClient (client.py) runs jobs in a local model process, ServerClient
(server_client.py) on a model server; Blender's runs and the CLI use either through
submit / poll / cancel / run / close. Standard library + numpy only.
"""

import collections
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from . import protocol, wire
from .errors import Cancelled, WorkerTimeout, error_from
from .options import check_family_takes, prompt_with_image_problem
from .prompts import clean_prompt
from .settings import GenerateSettings, ViewsSettings
from .views_files import ViewsJobResult


@dataclass
class JobResult:
    vertices: np.ndarray  # (N, 3) float32, Blender frame
    faces: np.ndarray  # (M, 3) int32
    colors: np.ndarray  # (N, 4) uint8 RGBA
    prepared_image: np.ndarray  # (H, W, 3) uint8; (0, 0, 3) for a text job (no picture)
    timings: dict  # stage -> seconds; "load" only when this job loaded the model
    device: str
    notes: list = field(default_factory=list)  # warnings for the user
    uvs: np.ndarray | None = None  # (M, 3, 2) float32 per face corner, when textured
    base_color: np.ndarray | None = None  # (T, T, 3) uint8, top row first
    normal_map: np.ndarray | None = None  # (T, T, 3) uint8, top row first


@dataclass
class Event:
    kind: str  # accepted, progress, preview, log, result, error, cancelled
    job_id: str | None = None
    stage: str | None = None
    fraction: float | None = None
    message: str | None = None
    code: str | None = None
    result: JobResult | None = None  # a ViewsJobResult for a views job
    detail: str | None = None  # progress: a long job's words, e.g. "coarse 120/400, loss 0.031"
    iteration: int | None = None  # preview: iterations of the stage done
    image: np.ndarray | None = None  # preview: (H, W, 3) uint8, top row first


class JobEvents:
    """Mixed into a client: events wait here until poll() or run() takes them.

    The client calls `_init_events()` in its constructor, `_emit` from whichever thread
    learns something, and provides `submit(settings, **source) -> job_id` and `cancel`.
    """

    def _init_events(self):
        self._events = queue.Queue()
        self._held = collections.deque()  # events run() took off the queue for other jobs
        self._held_lock = threading.Lock()

    def _emit(self, kind, job_id=None, **fields):
        self._events.put(Event(kind, job_id, **fields))

    def poll(self) -> list:
        """Every event since the last call; never blocks (a Blender timer calls it)."""
        with self._held_lock:
            events = list(self._held)
            self._held.clear()
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def run(self, settings, *, on_event=None, timeout=None, **source) -> JobResult:
        """Submit a job (`source`: submit's keywords) and wait for it; raises the job's
        BackendError, Cancelled when cancelled, WorkerTimeout after `timeout` seconds."""
        return self._wait(self.submit(settings, **source), on_event, timeout)

    def run_views(self, settings, *, on_event=None, timeout=None, **source):
        """submit_views and wait: the views job's ViewsJobResult (bridge/views_files.py)."""
        return self._wait(self.submit_views(settings, **source), on_event, timeout)

    def _wait(self, job_id: str, on_event, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is not None and time.monotonic() > deadline:
                self.cancel(job_id)
                raise WorkerTimeout(f"the job did not finish within {timeout} s")
            event = self._next_event(job_id)
            if event is None:
                continue
            if on_event is not None:
                on_event(event)
            if event.kind == "result":
                return event.result
            if event.kind == "error":
                raise error_from(event.code, event.message)
            if event.kind == "cancelled":
                raise Cancelled(event.message or "cancelled")

    def _next_event(self, job_id: str):
        """The next event of this job, or None after a short wait; events of other jobs
        are held for their own run() (other threads may run jobs on this client too)."""
        with self._held_lock:
            for index, event in enumerate(self._held):
                if event.job_id == job_id:
                    del self._held[index]
                    return event
        try:
            event = self._events.get(timeout=0.05)
        except queue.Empty:
            return None
        if event.job_id == job_id:
            return event
        with self._held_lock:
            self._held.append(event)
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def generate_request(settings, *, image_path=None, image_bytes=None, image_pixels=None, prompt=None) -> protocol.Generate:
    """A checked generate request with a new job id and exactly one source: an image, or
    a prompt (a text job; PromptError or WrongModelError here, before anything is sent);
    an image with a prompt for a family whose image jobs take one.

    image_path is made absolute (links left as they are: whoever reads it says what is
    wrong with a bad one); pixels are (H, W, 3|4) uint8, or float in [0, 1] sent as float32.
    """
    if isinstance(settings, dict):
        settings = GenerateSettings.from_dict(settings)
    if not isinstance(settings, GenerateSettings):
        raise TypeError("settings must be a GenerateSettings or a dict of its fields")
    images = sum(x is not None for x in (image_path, image_bytes, image_pixels))
    if images > 1 or (images == 0 and prompt is None):
        raise ValueError("give exactly one of image_path, image_bytes, image_pixels, prompt")
    request = protocol.Generate(job_id=uuid.uuid4().hex[:12], settings=settings.to_dict())
    if prompt is not None:
        request.prompt = clean_prompt(prompt)
    check_family_takes(settings.family, "image" if images else "text")
    problem = prompt_with_image_problem(settings.family, bool(images), prompt is not None)
    if problem:
        raise ValueError(problem)
    _set_image(request, image_path, image_bytes, image_pixels)
    return request


def views_request(settings, *, image_path=None, image_bytes=None, image_pixels=None) -> protocol.GenerateViews:
    """A checked generate_views request with a new job id and exactly one image."""
    if isinstance(settings, dict):
        settings = ViewsSettings.from_dict(settings)
    if not isinstance(settings, ViewsSettings):
        raise TypeError("settings must be a ViewsSettings or a dict of its fields")
    if sum(x is not None for x in (image_path, image_bytes, image_pixels)) != 1:
        raise ValueError("give exactly one of image_path, image_bytes, image_pixels")
    request = protocol.GenerateViews(job_id=uuid.uuid4().hex[:12], settings=settings.to_dict())
    _set_image(request, image_path, image_bytes, image_pixels)
    return request


def _set_image(request, image_path, image_bytes, image_pixels) -> None:
    if image_path is not None:
        request.image_path = os.path.abspath(os.path.expanduser(os.fspath(image_path)))
    elif image_bytes is not None:
        request.image_bytes = np.frombuffer(bytes(image_bytes), dtype=np.uint8)
    elif image_pixels is not None:
        request.image_pixels = _check_pixels(image_pixels)
    image = request.image_bytes if request.image_bytes is not None else request.image_pixels
    if image is not None and image.nbytes > wire.MAX_PAYLOAD_BYTES:
        raise ValueError(f"the image is larger than the {wire.MAX_PAYLOAD_BYTES >> 30} GiB a job can carry")


def _check_pixels(pixels) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ValueError(f"image_pixels must be (height, width, 4) RGBA, got shape {pixels.shape}")
    if not pixels.shape[0] or not pixels.shape[1]:
        raise ValueError(f"the image has no pixels ({pixels.shape[1]} x {pixels.shape[0]})")
    if pixels.dtype == np.uint8:
        return pixels
    if np.issubdtype(pixels.dtype, np.floating):
        return pixels.astype(np.float32, copy=False)
    raise ValueError(f"image_pixels must be uint8 or float in [0, 1], got {pixels.dtype}")


def views_job_result(event, timings: dict | None = None) -> ViewsJobResult:
    """A protocol.ViewsResult (from a worker or a server) as the client's ViewsJobResult."""
    return ViewsJobResult(event.views, list(event.view_ids), dict(event.poses), dict(event.pose_json),
                          event.contact_sheet, event.input_picture, float(event.polar), bool(event.polar_estimated),
                          dict(timings if timings is not None else event.timings), event.device,
                          [str(note) for note in event.notes])
