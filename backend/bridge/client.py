"""WorkerClient: starts, feeds and supervises the model process (`python -m backend.worker`).

Standard library + numpy only, so Blender's own Python can import it (no torch). One
supervisor thread owns the process (worker_process.py): it starts it, sends one job at a
time, turns the worker's events into client Events, and notices at once when the process
dies or stalls. poll() only drains a queue, so a Blender timer can call it every few
milliseconds.
"""

import atexit
import collections
import itertools
import os
import queue
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import protocol, wire
from .errors import Cancelled, WorkerFailed, WorkerTimeout, error_from
from .settings import GenerateSettings
from .worker_process import EXTENSION_ROOT, WorkerProcess

DEFAULT_LOG_DIR = Path(tempfile.gettempdir()) / "image_to_3d" / "logs"
LOG_NAME = "worker.log"  # written by backend.worker (rotated: worker.log.1, ...)


@dataclass
class JobResult:
    vertices: np.ndarray  # (N, 3) float32, Blender frame
    faces: np.ndarray  # (M, 3) int32
    colors: np.ndarray  # (N, 4) uint8 RGBA
    prepared_image: np.ndarray  # (H, W, 3) uint8
    timings: dict  # stage -> seconds; "load" only when this job loaded the model
    device: str


@dataclass
class Event:
    kind: str  # accepted, progress, log, result, error, cancelled
    job_id: str | None = None
    stage: str | None = None
    fraction: float | None = None
    message: str | None = None
    code: str | None = None
    result: JobResult | None = None


@dataclass
class _Submission:
    """A job this client was asked to run, from submit() until its last event."""

    request: protocol.Generate
    sent: bool = False
    stage: str = "start-up"  # named in timeout messages
    last_activity: float = 0.0
    cancel_at: float | None = None
    load_seconds: float | None = None

    @property
    def job_id(self) -> str:
        return self.request.job_id


_LIVE_CLIENTS = weakref.WeakSet()


@atexit.register
def _close_live_clients():
    # Blender quitting without close(): take the workers down with us
    for client in list(_LIVE_CLIENTS):
        client.close(grace=0.5)


class WorkerClient:
    """Runs image-to-mesh jobs in a separate model process; see docs/protocol.md."""

    start_timeout = 180.0  # seconds from launch to "ready" (imports torch)
    stage_timeout = 600.0  # seconds a job may go without any event from the worker
    cancel_grace = 5.0  # seconds a cancel may take before the process is killed
    shutdown_grace = 3.0

    def __init__(self, python: str, model: str, device: str = "auto", log_dir: str | None = None, env: dict | None = None,
                 precision: str = "float32"):
        self.python = str(python)
        self.model = str(model)
        self.device = device
        self.precision = precision
        self.log_dir = Path(log_dir) if log_dir else DEFAULT_LOG_DIR
        self.env = dict(env or {})
        self._inbox = queue.Queue()  # commands and worker frames, for the supervisor
        self._events = queue.Queue()  # Events, for poll() and run()
        self._held = collections.deque()  # events run() took off the queue for other jobs
        self._lock = threading.Lock()
        self._thread = None
        self._proc = None
        self._generations = itertools.count(1)
        self._pending = collections.deque()
        self._current = None
        self._pings = {}

    # ------------------------------------------------------------ public API

    @property
    def log_path(self) -> Path:
        return self.log_dir / LOG_NAME

    @property
    def is_running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.popen.poll() is None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.popen.pid if proc is not None else None

    def start(self):
        self._ensure_supervisor()
        self._inbox.put(("start", None, None))

    def submit(self, settings, *, image_path=None, image_bytes=None, image_pixels=None, model=None, device=None,
               precision=None) -> str:
        if isinstance(settings, dict):
            settings = GenerateSettings.from_dict(settings)
        if not isinstance(settings, GenerateSettings):
            raise TypeError("settings must be a GenerateSettings or a dict of its fields")
        given = [x is not None for x in (image_path, image_bytes, image_pixels)]
        if sum(given) != 1:
            raise ValueError("give exactly one of image_path, image_bytes, image_pixels")
        request = protocol.Generate(
            job_id=uuid.uuid4().hex[:12], settings=settings.to_dict(),
            model=str(model) if model is not None else self.model, device=device or self.device,
            precision=precision or self.precision,
        )
        if image_path is not None:
            request.image_path = os.fspath(Path(image_path).expanduser().resolve())
        elif image_bytes is not None:
            request.image_bytes = np.frombuffer(bytes(image_bytes), dtype=np.uint8)
        else:
            request.image_pixels = _check_pixels(image_pixels)
        image = request.image_bytes if request.image_bytes is not None else request.image_pixels
        if image is not None and image.nbytes > wire.MAX_PAYLOAD_BYTES:
            raise ValueError(f"the image is larger than the {wire.MAX_PAYLOAD_BYTES >> 30} GiB a job can carry")
        self._ensure_supervisor()
        self._inbox.put(("submit", _Submission(request), None))
        return request.job_id

    def poll(self) -> list:
        """Every event since the last call; never blocks."""
        with self._lock:
            events = list(self._held)
            self._held.clear()
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def cancel(self, job_id: str):
        if self._thread is not None:
            self._inbox.put(("cancel", job_id, None))

    def run(self, settings, *, image_path=None, image_bytes=None, image_pixels=None, model=None, device=None,
            precision=None, on_event=None, timeout=None) -> JobResult:
        """Submit a job and wait for it; raises the job's BackendError, Cancelled when cancelled."""
        job_id = self.submit(settings, image_path=image_path, image_bytes=image_bytes,
                             image_pixels=image_pixels, model=model, device=device, precision=precision)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is not None and time.monotonic() > deadline:
                self.cancel(job_id)
                raise WorkerTimeout(f"the job did not finish within {timeout} s")
            try:
                event = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            if event.job_id != job_id:
                with self._lock:
                    self._held.append(event)
                continue
            if on_event is not None:
                on_event(event)
            if event.kind == "result":
                return event.result
            if event.kind == "error":
                raise error_from(event.code, event.message)
            if event.kind == "cancelled":
                raise Cancelled(event.message or "cancelled")

    def ping(self, timeout: float = 5.0) -> bool:
        """True when the worker is running and answers."""
        if self._thread is None:
            return False
        # through the supervisor, so a ping right after start() sees the new process
        answer = queue.Queue(maxsize=1)
        self._inbox.put(("ping", uuid.uuid4().hex[:8], answer))
        try:
            return answer.get(timeout=timeout)
        except queue.Empty:
            return False

    def close(self, grace: float | None = None):
        """Stop the worker (shutdown, then kill) and the supervisor; leaves no process behind."""
        thread = self._thread
        if thread is None:
            return
        self._inbox.put(("close", self.shutdown_grace if grace is None else grace, None))
        thread.join()
        self._thread = None
        _LIVE_CLIENTS.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ the supervisor thread

    def _ensure_supervisor(self):
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)
                self._thread.start()
                _LIVE_CLIENTS.add(self)

    def _emit(self, kind, job_id=None, **fields):
        self._events.put(Event(kind, job_id, **fields))

    def _supervise(self):
        while True:
            try:
                command, arg, extra = self._inbox.get(timeout=0.1)
            except queue.Empty:
                command = None
            if command == "close":
                self._shut_down(arg)
                return
            try:
                if command is not None:
                    self._handle(command, arg, extra)
                self._check_clocks()
                self._dispatch()
            except Exception as exc:  # noqa: BLE001 (a bug here must not leave run() waiting forever)
                self._fail_process(WorkerFailed.code, f"internal error in the worker client: {exc!r}")

    def _handle(self, command, arg, extra):
        if command == "start":
            if not self.is_running:
                self._spawn()
        elif command == "submit":
            self._pending.append(arg)
        elif command == "cancel":
            self._cancel(arg)
        elif command == "ping":
            if self.is_running:
                self._pings[arg] = extra
                self._proc.send(protocol.Ping(id=arg))
            else:
                extra.put(False)
        elif command in ("event", "garbled", "exited"):
            if self._proc is None or arg != self._proc.generation:
                return  # from a process we already stopped
            if command == "event":
                self._on_event(extra)
            elif command == "garbled":
                self._fail_process(WorkerFailed.code, f"the model process sent a malformed frame ({extra})")
            else:
                self._on_exit()

    def _spawn(self):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
        env["PYTHONPATH"] = str(EXTENSION_ROOT)  # Blender's own module path must not leak in
        env.update(self.env)
        argv = [self.python, "-m", "backend.worker", "--log-dir", str(self.log_dir), "--parent-pid", str(os.getpid())]
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._proc = WorkerProcess(argv, env, next(self._generations), self._inbox)
        except OSError as exc:
            self._proc = None
            if self._current is not None:
                job, self._current = self._current, None
                self._emit("error", job.job_id, code=WorkerFailed.code,
                           message=f"could not start the model process with {self.python}: {exc}")

    def _dispatch(self):
        if self._current is None and self._pending:
            self._current = self._pending.popleft()
            self._current.last_activity = time.monotonic()
            if not self.is_running:
                self._spawn()
        job = self._current
        if job is not None and not job.sent and self._proc is not None and self._proc.ready:
            job.sent = True
            job.last_activity = time.monotonic()
            self._proc.send(job.request)

    def _cancel(self, job_id):
        for job in list(self._pending):
            if job.job_id == job_id:
                self._pending.remove(job)
                self._emit("cancelled", job_id, message="cancelled before it started")
                return
        job = self._current
        if job is None or job.job_id != job_id or job.cancel_at is not None:
            return
        if not job.sent:
            self._current = None  # the worker never saw it; let it finish starting
            self._emit("cancelled", job_id, message="cancelled before it started")
        else:
            job.cancel_at = time.monotonic()
            self._proc.send(protocol.Cancel(job_id=job_id))

    def _on_event(self, event):
        proc, job = self._proc, self._current
        if isinstance(event, protocol.Ready):
            proc.ready = True
            return
        if isinstance(event, protocol.Pong):
            answer = self._pings.pop(event.id, None)
            if answer is not None:
                answer.put(True)
            return
        job_id = getattr(event, "job_id", None)
        if job is None or job_id != job.job_id:
            if isinstance(event, protocol.Error):  # not about a job we run: pass it on, but fail nothing
                self._emit("log", job_id, message=f"model process: {event.message}")
                if job is not None and not proc.ready and job_id is None:  # it failed to start
                    self._fail_process(event.code or WorkerFailed.code, event.message, kill=False)
            return
        job.last_activity = time.monotonic()
        if isinstance(event, protocol.Accepted):
            job.stage = "model loading"
            self._emit("accepted", job_id)
        elif isinstance(event, protocol.Progress):
            job.stage = event.stage
            self._emit("progress", job_id, stage=event.stage, fraction=event.fraction)
        elif isinstance(event, protocol.Log):
            self._emit("log", job_id, message=event.message)
        elif isinstance(event, protocol.ModelLoaded):
            if event.reused:
                text = f"reusing the loaded model {event.model_dir} on {event.device}"
            else:
                job.load_seconds = event.load_seconds
                text = f"loaded model {event.model_dir} on {event.device} in {job.load_seconds:.2f} s"
            self._emit("log", job_id, message=text)
        elif isinstance(event, protocol.Result):
            self._current = None
            timings = dict(event.timings)
            if job.load_seconds is not None:
                timings["load"] = job.load_seconds
            result = JobResult(event.vertices, event.faces, event.colors, event.prepared_image, timings, event.device)
            self._emit("result", job_id, result=result)
        elif isinstance(event, protocol.Error):
            self._current = None
            self._emit("error", job_id, code=event.code, message=event.message)
        elif isinstance(event, protocol.Cancelled):
            self._current = None
            self._emit("cancelled", job_id, message=event.message)

    def _check_clocks(self):
        proc, job, now = self._proc, self._current, time.monotonic()
        if proc is not None and not proc.ready and now - proc.started > self.start_timeout:
            self._fail_process(WorkerTimeout.code, f"the model process did not start within {self.start_timeout:.0f} s")
        elif job is not None and job.cancel_at is not None and now - job.cancel_at > self.cancel_grace:
            self._stop_process()
            self._current = None
            self._emit("cancelled", job.job_id,
                       message=f"cancelled (the model process did not stop within {self.cancel_grace:.0f} s and was restarted)")
        elif job is not None and job.sent and now - job.last_activity > self.stage_timeout:
            self._fail_process(
                WorkerTimeout.code,
                f"the model process made no progress for {self.stage_timeout:.0f} s in stage '{job.stage}' and was stopped",
            )

    def _on_exit(self):
        proc = self._proc
        description = proc.exit_description()
        self._stop_process()
        job, self._current = self._current, None
        if job is None:
            self._emit("log", None, message=description)
        elif job.cancel_at is not None:
            self._emit("cancelled", job.job_id, message="cancelled")
        else:
            self._emit("error", job.job_id, code=WorkerFailed.code, message=f"{description}{self._last_lines(proc)}")

    def _fail_process(self, code, message, kill=True):
        """Fail the current job with `message` and stop the process (the next job starts a fresh one)."""
        proc = self._proc
        self._stop_process(grace=0 if kill else 1.0)
        job, self._current = self._current, None
        if job is not None:
            self._emit("error", job.job_id, code=code, message=f"{message}{self._last_lines(proc)}")
        else:
            self._emit("log", None, message=message)

    def _stop_process(self, grace=0.0):
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stop(grace)
        for answer in self._pings.values():
            answer.put(False)
        self._pings.clear()

    def _shut_down(self, grace):
        for job in [self._current, *self._pending]:
            if job is not None:
                self._emit("cancelled", job.job_id, message="the worker was closed")
        self._current = None
        self._pending.clear()
        self._stop_process(grace)

    def _last_lines(self, proc) -> str:
        """' - last log lines: ...' from the worker's stderr and its log file."""
        if proc is None:
            return ""
        lines = proc.last_words(self.log_path)
        if not lines:
            return f" (log: {self.log_path})"
        return f" - last log lines ({self.log_path}):\n" + "\n".join(lines)


def _check_pixels(pixels) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ValueError(f"image_pixels must be (height, width, 4) RGBA, got shape {pixels.shape}")
    if pixels.dtype == np.uint8:
        return pixels
    if np.issubdtype(pixels.dtype, np.floating):
        return pixels.astype(np.float32, copy=False)
    raise ValueError(f"image_pixels must be uint8 or float in [0, 1], got {pixels.dtype}")
