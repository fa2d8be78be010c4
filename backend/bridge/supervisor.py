"""What the WorkerClient's supervisor thread does: it alone starts, feeds, watches and
stops the model process, and turns its events into the client's Events.

Everything here runs on that one thread (commands arrive through the client's inbox),
so none of it needs a lock.
"""

import os
import queue
import time
from dataclasses import dataclass

from . import protocol
from .errors import WorkerFailed, WorkerTimeout
from .job_client import JobResult, views_job_result
from .worker_process import EXTENSION_ROOT, WorkerProcess, log_folder_problem


@dataclass
class Submission:
    """A job this client was asked to run, from submit() until its last event."""

    request: protocol.Generate  # or protocol.GenerateViews
    sent: bool = False
    stage: str = "start-up"  # named in timeout messages
    last_activity: float = 0.0
    cancel_at: float | None = None
    load_seconds: float | None = None

    @property
    def job_id(self) -> str:
        return self.request.job_id



class Supervision:
    """Mixed into WorkerClient; the supervisor thread runs `_supervise`."""

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
        elif command in ("event", "garbled", "exited", "unsendable"):
            if self._proc is None or arg != self._proc.generation:
                return  # from a process we already stopped
            if command == "event":
                self._on_event(extra)
            elif command == "unsendable":
                self._fail_process(WorkerFailed.code, f"the request could not be sent to the model process ({extra})")
            elif command == "garbled":
                self._fail_process(WorkerFailed.code, f"the model process sent a malformed frame ({extra})")
            else:
                self._on_exit()

    def _spawn(self):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
        env["PYTHONPATH"] = str(EXTENSION_ROOT)  # Blender's own module path must not leak in
        env.update(self.env)
        argv = [self.python, "-m", "backend.worker", "--log-dir", str(self.log_dir), "--parent-pid", str(os.getpid()),
                "--idle-unload", str(self.idle_unload)]
        problem = log_folder_problem(self.log_dir)
        try:
            if problem is None:
                self._proc = WorkerProcess(argv, env, next(self._generations), self._inbox)
        except OSError as exc:
            problem = f"could not start the model process with {self.python}: {exc}"
        if problem is not None:
            self._proc = None
            if self._current is not None:
                job, self._current = self._current, None
                self._emit("error", job.job_id, code=WorkerFailed.code, message=problem)

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
        if isinstance(event, protocol.ModelLoaded):
            self.model_state = {"model_dir": event.model_dir, "device": event.device, "precision": event.precision,
                                "weights_bytes": event.weights_bytes}
        elif isinstance(event, protocol.ModelUnloaded):
            self.model_state = None
            self._emit("log", None, message=f"the model was unloaded ({event.reason})")
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
            self._emit("progress", job_id, stage=event.stage, fraction=event.fraction, detail=event.detail)
        elif isinstance(event, protocol.Preview):
            self._emit("preview", job_id, stage=event.stage, iteration=event.iteration, image=event.image)
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
            result = JobResult(event.vertices, event.faces, event.colors, event.prepared_image, timings, event.device,
                               [str(note) for note in event.notes], event.uvs, event.base_color, event.normal_map)
            self._emit("result", job_id, result=result)
        elif isinstance(event, protocol.ViewsResult):
            self._current = None
            timings = dict(event.timings)
            if job.load_seconds is not None:
                timings["load"] = job.load_seconds
            self._emit("result", job_id, result=views_job_result(event, timings))
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
        elif job is not None and job.sent and self._suspended_too_long(proc, now):
            self._fail_process(
                WorkerFailed.code,
                "the model process was suspended (stopped by a signal or a debugger) and could not go on; "
                "it was ended, and the next job starts a fresh one",
            )
        elif job is not None and job.sent and now - job.last_activity > self.stage_timeout:
            self._fail_process(
                WorkerTimeout.code,
                f"the model process made no progress for {self.stage_timeout:.0f} s in stage '{job.stage}' and was stopped",
            )

    def _suspended_too_long(self, proc, now) -> bool:
        if proc is None or not proc.is_suspended():
            if proc is not None:
                proc.stopped_since = None
            return False
        proc.stopped_since = proc.stopped_since or now
        return now - proc.stopped_since > self.suspended_grace

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
        self.model_state = None
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


