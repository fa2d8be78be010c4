"""One running model process (`python -m backend.worker`) and the threads that talk to it.

Standard library + numpy only. The WorkerClient (client.py) owns one of these at a time:
it reads the process's frames into the client's inbox, writes requests from a queue of
its own (so a hung worker with a full pipe never blocks the client), keeps the last words
the process printed before its log existed, and stops and reaps it.
"""

import collections
import os
import queue
import re
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from . import protocol, wire
from .errors import BadRequest

EXTENSION_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds backend/
LOG_NAME = "worker.log"  # written by backend.worker (rotated: worker.log.1, ...)
LOG_TAIL_LINES = 8
LOG_LINE_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:")  # a new record, not a traceback line


def default_log_dir() -> Path:
    """This user's private folder for the worker's log (used outside Blender).

    Private (0700 on POSIX) because the temporary folder is shared: another user must not
    read the log, nor plant a link there that the worker would write through.
    """
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"image_to_3d-{user}" / "logs"


def log_folder_problem(folder: Path) -> str | None:
    """Why the worker could not log in `folder` (made if missing); None when it can."""
    folder = Path(folder)
    try:
        if folder == default_log_dir():
            _make_private(folder.parent)
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except (OSError, PermissionError) as exc:
        return (f"the model process cannot write its log in {folder} ({getattr(exc, 'strerror', None) or exc}): "
                "make the folder writable or choose another log folder")
    if (folder / LOG_NAME).is_symlink():
        return f"{folder / LOG_NAME} is a link; the model process does not write its log through links: remove it"
    return None


def _make_private(folder: Path) -> None:
    folder.mkdir(mode=0o700, exist_ok=True)
    if os.name != "posix":
        return
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{folder} is a link or belongs to another user")
    if info.st_mode & 0o077:
        os.chmod(folder, 0o700)


class WorkerProcess:
    """One worker process and the two threads that read its stdout (frames) and stderr."""

    def __init__(self, argv, env, generation, inbox):
        creation = getattr(subprocess, "CREATE_NO_WINDOW", 0) if os.name == "nt" else 0
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=EXTENSION_ROOT, env=env, creationflags=creation,
        )
        self.generation = generation
        self.started = time.monotonic()
        self.ready = False
        self.stopped_since = None  # when the process was first seen suspended (SIGSTOP)
        self.stderr_tail = collections.deque(maxlen=LOG_TAIL_LINES)
        self._inbox = inbox
        self._outbox = queue.Queue()  # frames to send; a thread writes them so a hung
        # worker with a full pipe can never block the supervisor
        threading.Thread(target=self._read_frames, name="worker-frames", daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, name="worker-stderr", daemon=True)
        self._stderr_reader.start()
        threading.Thread(target=self._write_frames, name="worker-requests", daemon=True).start()

    def _read_frames(self):
        reader = wire.FrameReader(self.popen.stdout)
        while True:
            try:
                frame = reader.read()
                event = None if frame is None else protocol.parse(frame, protocol.EVENTS)
            except (wire.ProtocolError, BadRequest) as exc:
                self._inbox.put(("garbled", self.generation, exc.message))
                continue
            except (wire.StreamClosed, OSError, ValueError):
                event = None
            if event is None:
                self._inbox.put(("exited", self.generation, None))
                return
            self._inbox.put(("event", self.generation, event))

    def _read_stderr(self):
        # only what the worker prints before it moves fd 2 to its log (e.g. an ImportError)
        try:
            for line in self.popen.stderr:
                self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())
        except (OSError, ValueError):
            pass

    def _write_frames(self):
        while (request := self._outbox.get()) is not None:
            try:
                protocol.send(self.popen.stdin, request)
            except (OSError, ValueError):  # the process is gone; its reader reports the exit
                return
            except Exception as exc:  # noqa: BLE001 - a request that cannot be written must fail its job, not this thread
                self._inbox.put(("unsendable", self.generation, f"{type(exc).__name__}: {exc}"))

    def send(self, request):
        """Queue a protocol request (a dataclass of protocol.REQUESTS) for the writer thread."""
        self._outbox.put(request)

    def stop(self, grace: float):
        """Ask it to shut down, kill it after `grace` seconds, and reap it (no zombie)."""
        if self.popen.poll() is None and grace > 0:
            self.send(protocol.Shutdown())
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        self._outbox.put(None)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def is_suspended(self) -> bool:
        """True while the process is stopped by a signal or a debugger (Linux; False elsewhere)."""
        try:
            with open(f"/proc/{self.popen.pid}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state in (b"T", b"t")

    def exit_description(self) -> str:
        try:
            code = self.popen.wait(5)
        except subprocess.TimeoutExpired:
            return "the model process stopped answering"
        self._stderr_reader.join(1.0)  # its last words, e.g. a traceback before the log existed
        if code < 0:
            try:
                how = f"signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"signal {-code}"
        else:
            how = f"code {code}"
        return f"the model process exited ({how})"

    def last_words(self, log_path: Path) -> list[str]:
        """What it printed before its log existed, then its own lines of the log file."""
        lines = list(self.stderr_tail)
        marker = f" pid {self.popen.pid} "
        try:
            with open(log_path, "rb") as log_file:
                log_file.seek(0, os.SEEK_END)
                log_file.seek(max(0, log_file.tell() - 64 * 1024))
                text = log_file.read().decode("utf-8", "replace")
        except OSError:
            text = ""
        mine = False
        for line in text.splitlines():
            if LOG_LINE_START.match(line):
                mine = marker in line
            if mine:  # its own lines and their continuations (tracebacks)
                lines.append(line)
        return lines[-LOG_TAIL_LINES:]
