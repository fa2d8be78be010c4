"""WorkerClient: starts, feeds and supervises the model process (`python -m backend.worker`).

Standard library + numpy only, so Blender's own Python can import it (no torch). One
supervisor thread (supervisor.py) owns the process (worker_process.py): it starts it,
sends one job at a time, turns the worker's events into client Events, and notices at
once when the process dies or stalls. poll() only drains a queue, so a Blender timer
can call it every few milliseconds.
"""

import atexit
import collections
import itertools
import queue
import threading
import uuid
import weakref
from pathlib import Path

from .job_client import Event, JobEvents, JobResult, generate_request, views_request  # noqa: F401 - Event and JobResult are part of the API
from .supervisor import Submission, Supervision
from .worker_process import LOG_NAME, default_log_dir

_LIVE_CLIENTS = weakref.WeakSet()


def _model_reference(model):
    """A folder or hub id as text, or {slot id: folder} for a family that needs several."""
    return {str(slot): str(folder) for slot, folder in model.items()} if isinstance(model, dict) else str(model)


@atexit.register
def _close_live_clients():
    # Blender quitting without close(): take the workers down with us
    for client in list(_LIVE_CLIENTS):
        client.close(grace=0.5)


class WorkerClient(Supervision, JobEvents):
    """Runs image-to-mesh jobs in a separate model process; see docs/protocol.md.

    The public API is here; what the supervisor thread does is in supervisor.py.
    """

    start_timeout = 180.0  # seconds from launch to "ready" (imports torch)
    stage_timeout = 600.0  # seconds a job may go without any event from the worker
    cancel_grace = 5.0  # seconds a cancel may take before the process is killed
    suspended_grace = 3.0  # seconds a job's process may stay stopped (SIGSTOP) before it is ended
    shutdown_grace = 3.0

    def __init__(self, python: str, model: str | dict, device: str = "auto", log_dir: str | None = None, env: dict | None = None,
                 precision: str = "float32", idle_unload: float = 0.0):
        """idle_unload: seconds without a job after which the worker lets a model on a GPU go."""
        self.python = str(python)
        self.idle_unload = float(idle_unload)
        # what the worker holds, as its events tell: None, or model_dir, device, precision,
        # weights_bytes (read by the UI; written by the supervisor thread only)
        self.model_state: dict | None = None
        self.model = _model_reference(model)
        self.device = device
        self.precision = precision
        self.log_dir = Path(log_dir) if log_dir else default_log_dir()
        self.env = dict(env or {})
        self._inbox = queue.Queue()  # commands and worker frames, for the supervisor
        self._init_events()  # Events, for poll() and run()
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

    def submit(self, settings, *, image_path=None, image_bytes=None, image_pixels=None, prompt=None, model=None,
               device=None, precision=None) -> str:
        request = generate_request(settings, image_path=image_path, image_bytes=image_bytes, image_pixels=image_pixels,
                                   prompt=prompt)
        request.model = _model_reference(model) if model is not None else self.model
        request.device = device or self.device
        request.precision = precision or self.precision
        self._ensure_supervisor()
        self._inbox.put(("submit", Submission(request), None))
        return request.job_id

    def submit_views(self, settings, *, image_path=None, image_bytes=None, image_pixels=None, model=None, device=None,
                     precision="auto") -> str:
        """A views job (bridge/settings.py ViewsSettings; registry.VIEWS): its result event
        carries a ViewsJobResult. model: the views' folders (a folder holding the
        Zero123-XL and LoFTR folders, or {slot id: folder}); None = the client's model.
        precision: auto (float16 on CUDA, as One-2-3-45), float32 or float16."""
        request = views_request(settings, image_path=image_path, image_bytes=image_bytes, image_pixels=image_pixels)
        request.model = _model_reference(model) if model is not None else self.model
        request.device = device or self.device
        request.precision = precision
        self._ensure_supervisor()
        self._inbox.put(("submit", Submission(request), None))
        return request.job_id

    def cancel(self, job_id: str):
        if self._thread is not None:
            self._inbox.put(("cancel", job_id, None))

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

    def _ensure_supervisor(self):
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)
                self._thread.start()
                _LIVE_CLIENTS.add(self)
