"""`python -m backend.worker`: the model process that Blender starts and feeds.

It speaks backend.protocol on private duplicates of the stdin/stdout it was started
with; fds 1 and 2 are then pointed at a pipe whose lines go to a rotating log file, so
a library that prints cannot corrupt a frame. The model stays loaded between jobs. A
reader thread takes requests while a job runs, so `cancel` and `ping` answer at once.
The process exits on `shutdown`, when its input closes, or when its parent dies.
"""

import argparse
import faulthandler
import logging
import logging.handlers
import os
import queue
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

LOG_NAME = "worker.log"
FAULT_LOG_NAME = "worker-faults.log"  # faulthandler needs a file that never rotates
LOG_MAX_BYTES = 2 * 1024 * 1024
LOG_BACKUPS = 3
PARENT_CHECK_SECONDS = 1.0
PROGRESS_INTERVAL = 0.1  # seconds between progress events of one stage
# Test-only: when set, the worker prints junk to fd 1 and 2 at every progress step,
# standing in for a chatty library. Harmless: the junk only reaches the log.
NOISE_ENV = "IMAGE_TO_3D_WORKER_TEST_NOISE"

log = logging.getLogger("image_to_3d.worker")


# ---------------------------------------------------------------- process set-up


def take_protocol_streams():
    """Move the protocol off fds 0/1 and send everything printed to a pipe we log.

    Returns (protocol input, protocol output, read end of the printed-output pipe).
    """
    proto_in, proto_out = os.dup(0), os.dup(1)  # dup'd fds are not inherited by children
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    printed_r, printed_w = os.pipe()
    os.dup2(printed_w, 1)
    os.dup2(printed_w, 2)
    os.close(printed_w)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # None under pythonw
            stream.reconfigure(line_buffering=True)
    return os.fdopen(proto_in, "rb"), os.fdopen(proto_out, "wb"), printed_r


def setup_logging(log_dir: Path) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / LOG_NAME
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s pid %(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.raiseExceptions = False  # a failing log write must never print (and loop) or kill us
    faulthandler.enable(open(log_dir / FAULT_LOG_NAME, "a"))  # noqa: SIM115 (lives as long as we do)
    return path


def pump_printed_output(fd: int):
    """Copy whatever anything prints to fds 1/2 into the log, line by line."""
    printed = logging.getLogger("image_to_3d.printed")
    with os.fdopen(fd, "rb") as stream:
        for line in stream:
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                printed.info(text)


def watch_parent(parent_pid: int):
    """Exit when the process that started us is gone (POSIX; on Windows the pipe closes)."""
    if os.name != "posix":
        return
    first_parent = os.getppid()
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        gone = os.getppid() != first_parent
        if not gone and parent_pid:
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                gone = True
            except PermissionError:
                pass
        if gone:
            log.warning("the parent process %s is gone: exiting", parent_pid)
            os._exit(0)


# ---------------------------------------------------------------- requests


class BadRequest(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Job:
    kind: str  # "generate" or "load_model"
    job_id: str
    model: str | None = None
    device: str | None = None
    precision: str | None = None
    settings: object = None
    image: object = None  # a Path, bytes or a numpy array


def _optional_str(msg, name):
    value = msg.get(name)
    if value is not None and (not isinstance(value, str) or not value or len(value) > 4096):
        raise BadRequest("bad_request", f"'{name}' must be a non-empty string")
    return value


def parse_job(msg) -> Job:
    """Check a load_model or generate request; raises BadRequest naming what is wrong."""
    from .errors import InputImageError
    from .protocol import BAD_REQUEST
    from .settings import GenerateSettings

    job = Job(msg.type, msg.get("job_id"), _optional_str(msg, "model"), _optional_str(msg, "device"), _optional_str(msg, "precision"))
    if msg.type == "load_model":
        return job
    try:
        job.settings = GenerateSettings.from_dict(msg.get("settings") if isinstance(msg.get("settings"), dict) else {})
    except (TypeError, ValueError) as exc:
        raise BadRequest(BAD_REQUEST, f"bad settings: {exc}") from None
    path = _optional_str(msg, "image_path")
    sources = [path is not None, "image_bytes" in msg.arrays, "image_pixels" in msg.arrays]
    if sum(sources) != 1:
        raise BadRequest(BAD_REQUEST, "a generate request needs exactly one of image_path, image_bytes, image_pixels")
    if path is not None:
        if not Path(path).is_file():
            raise BadRequest(InputImageError.code, f"{path}: no such file (or not a regular file)")
        job.image = Path(path)
    elif "image_bytes" in msg.arrays:
        data = msg.arrays["image_bytes"]
        if data.dtype.name != "uint8" or data.ndim != 1:
            raise BadRequest(BAD_REQUEST, "image_bytes must be a 1-D uint8 buffer")
        job.image = data.tobytes()
    else:
        pixels = msg.arrays["image_pixels"]
        if pixels.ndim != 3 or pixels.shape[2] not in (3, 4) or pixels.dtype.name not in ("uint8", "float32"):
            raise BadRequest(BAD_REQUEST, "image_pixels must be (height, width, 3 or 4) uint8 or float32")
        job.image = pixels
    return job


# ---------------------------------------------------------------- the server


def _is_cuda_oom(exc: BaseException) -> bool:
    import torch

    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(exc, oom_type)) or (
        isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)
    )


def _free_gpu_memory():
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class WorkerServer:
    def __init__(self, frames_in, stream_out, log_path: Path):
        from . import protocol

        self._protocol = protocol
        self._reader = protocol.FrameReader(frames_in)
        self._out = stream_out
        self._out_lock = threading.Lock()
        self._log_path = log_path
        self._jobs = queue.Queue()  # Job, or None to stop
        self._cancelled = set()  # job ids asked to cancel (running or queued)
        self._stopping = False
        self._loaded = None
        self._loaded_request = None  # (model, device, precision) as last asked for
        self._noisy = bool(os.environ.get(NOISE_ENV))

    # -- output

    def send(self, msg_type, fields=None, arrays=None):
        try:
            with self._out_lock:
                self._protocol.write_message(self._out, msg_type, fields, arrays)
        except (BrokenPipeError, OSError):
            log.warning("the client closed the pipe: exiting")
            os._exit(0)

    def send_error(self, job_id, code, message):
        log.info("job %s failed (%s): %s", job_id, code, message)
        self.send("error", {"job_id": job_id, "code": code, "message": message})

    def send_log(self, job_id, message, level="info"):
        log.info("job %s: %s", job_id, message)
        self.send("log", {"job_id": job_id, "level": level, "message": message})

    # -- the reader thread: every request lands here, also while a job runs

    def read_requests(self):
        protocol = self._protocol
        while True:
            try:
                msg = self._reader.read()
            except protocol.ProtocolError as exc:
                self.send_error(exc.job_id, protocol.BAD_REQUEST, f"malformed frame: {exc.message}")
                continue
            except protocol.StreamClosed as exc:
                msg = None
                log.warning("%s", exc)
            if msg is None:
                log.info("the client closed our input: exiting")
                os._exit(0)
            job_id = msg.get("job_id") if isinstance(msg.get("job_id"), str) else None
            try:
                self.handle(msg)
            except BadRequest as exc:
                self.send_error(job_id, exc.code, exc.message)
            except Exception as exc:  # noqa: BLE001 (this thread must outlive any one request)
                log.error("request %s could not be handled\n%s", msg.type[:64], traceback.format_exc())
                self.send_error(job_id, protocol.BAD_REQUEST, f"the request could not be handled: {exc!r}")

    def handle(self, msg):
        job_id = msg.get("job_id")
        if msg.type in ("generate", "load_model", "cancel") and not (isinstance(job_id, str) and 0 < len(job_id) <= 128):
            raise BadRequest(self._protocol.BAD_REQUEST, f"a {msg.type} request needs a 'job_id' string")
        if msg.type == "ping":
            self.send("pong", {"id": msg.get("id")})
        elif msg.type == "cancel":
            self._cancelled.add(job_id)
        elif msg.type == "shutdown":
            self._stopping = True
            self._jobs.put(None)
        elif msg.type in ("generate", "load_model"):
            self._jobs.put(parse_job(msg))
        else:
            raise BadRequest(self._protocol.BAD_REQUEST, f"unknown request type {msg.type[:64]!r}")

    # -- the main thread: jobs, one at a time

    def serve(self):
        import torch

        from . import pipeline

        threading.Thread(target=self.read_requests, name="requests", daemon=True).start()
        self.send("ready", {"pid": os.getpid(), "protocol": self._protocol.VERSION, "log_path": str(self._log_path),
                            "python": sys.version.split()[0], "torch": torch.__version__})
        log.info("ready (torch %s)", torch.__version__)
        while True:
            job = self._jobs.get()
            if job is None:
                break
            self.run_job(job, pipeline)
        self.send("bye")
        log.info("shut down on request")

    def run_job(self, job: Job, pipeline):
        from .errors import BackendError, Cancelled, OutOfMemoryError

        job_id = job.job_id
        try:
            if job_id in self._cancelled or self._stopping:
                raise Cancelled()
            self.send("accepted", {"job_id": job_id})
            loaded = self.ensure_model(job, pipeline)
            if job.kind == "load_model":
                return
            result = self.generate(job, loaded, pipeline)
        except Cancelled as exc:
            log.info("job %s cancelled", job_id)
            self.send("cancelled", {"job_id": job_id, "message": exc.message})
        except (BackendError, BadRequest) as exc:
            self.send_error(job_id, exc.code, exc.message)
        except MemoryError:
            message = f"the computer ran out of memory at resolution {job.settings.resolution}: lower the resolution setting"
            self.send_error(job_id, OutOfMemoryError.code, message)
        except Exception as exc:  # noqa: BLE001 (one bad job must not end the worker)
            log.error("job %s: unexpected error\n%s", job_id, traceback.format_exc())
            self.send_error(job_id, BackendError.code, f"unexpected error in the model process: {exc.__class__.__name__}: {exc} (details in {self._log_path})")
        else:
            self.send(
                "result",
                {"job_id": job_id, "device": loaded.device, "timings": result.timings},
                {"vertices": result.vertices, "faces": result.faces, "colors": result.colors,
                 "prepared_image": result.prepared_image},
            )
            log.info("job %s done: %d vertices, %d faces", job_id, len(result.vertices), len(result.faces))
        finally:
            self._cancelled.discard(job_id)

    def ensure_model(self, job: Job, pipeline):
        """The loaded model for this job's model/device/precision; loads only on a change."""
        request = (job.model, job.device or "auto", job.precision or "float32")
        if job.model is None:
            if self._loaded is None:
                raise BadRequest(self._protocol.BAD_REQUEST, "no model given and none loaded")
            request = self._loaded_request
        reused = self._loaded is not None and request == self._loaded_request
        if not reused and self._loaded is not None:
            # the same folder asked for differently (e.g. "auto" vs "cpu") still reuses
            from .devices import resolve_device

            same_dir = pipeline.resolve_model_dir(request[0]) == self._loaded.model_dir
            same_device = resolve_device(request[1]).type == self._loaded.device
            reused = same_dir and same_device and request[2] == self._loaded.precision
        if not reused:
            self.send_log(job.job_id, f"loading model {request[0]} (device {request[1]}, {request[2]})")
            self._loaded = None  # free the old model before loading another
            _free_gpu_memory()
            self._loaded = pipeline.load_model(*request)
        self._loaded_request = request
        loaded = self._loaded
        self.send("model_loaded", {
            "job_id": job.job_id, "model_dir": str(loaded.model_dir), "device": loaded.device,
            "precision": loaded.precision, "reused": reused, "load_seconds": 0.0 if reused else loaded.load_seconds,
        })
        return loaded

    def generate(self, job: Job, loaded, pipeline):
        from .devices import default_chunk
        from .errors import OutOfMemoryError

        job_id = job.job_id
        last_sent = {}

        def progress(stage, fraction):
            now = time.monotonic()
            if fraction in (0.0, 1.0) or now - last_sent.get(stage, 0.0) >= PROGRESS_INTERVAL:
                last_sent[stage] = now
                self.send("progress", {"job_id": job_id, "stage": stage, "fraction": float(fraction)})
            if self._noisy:
                _print_test_noise()

        def should_cancel():
            return job_id in self._cancelled or self._stopping

        def attempt(chunk_size):
            return pipeline.generate_mesh(loaded, job.image, job.settings, progress, should_cancel, chunk_size)

        try:
            return attempt(None)
        except Exception as exc:  # noqa: BLE001
            if not _is_cuda_oom(exc):
                raise
        # out of the except block, so the failed attempt's tensors can be freed
        _free_gpu_memory()
        smaller = max(1024, default_chunk(_torch_device(loaded.device)) // 8)
        self.send_log(job_id, f"the GPU ran out of memory; retrying with smaller chunks ({smaller} points)", "warning")
        try:
            return attempt(smaller)
        except Exception as exc:  # noqa: BLE001
            if not _is_cuda_oom(exc):
                raise
        _free_gpu_memory()
        resolution = job.settings.resolution
        raise OutOfMemoryError(
            f"the GPU ran out of memory at resolution {resolution}, even with smaller chunks: "
            f"lower the resolution setting (e.g. to {max(32, resolution // 2)}) or choose the CPU device"
        )


def _torch_device(name):
    import torch

    return torch.device(name)


def _print_test_noise():
    print("test noise on stdout I3D\x01 {not a frame}")
    print("test noise on stderr", file=sys.stderr)
    os.write(1, b"I3D\x01\xff\xff raw noise on fd 1\n")
    os.write(2, b"raw noise on fd 2\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", required=True, type=Path, help="folder for worker.log (rotated)")
    parser.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    args = parser.parse_args(argv)
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in Blender's terminal is for Blender

    frames_in, stream_out, printed_fd = take_protocol_streams()
    log_path = setup_logging(args.log_dir)
    log.info("started by pid %s, python %s", args.parent_pid, sys.executable)
    threading.Thread(target=pump_printed_output, args=(printed_fd,), name="printed", daemon=True).start()
    threading.Thread(target=watch_parent, args=(args.parent_pid,), name="parent", daemon=True).start()
    try:
        server = WorkerServer(frames_in, stream_out, log_path)
        server.serve()
    except Exception as exc:  # noqa: BLE001 (e.g. torch missing: tell the client, then exit)
        log.error("the worker could not run\n%s", traceback.format_exc())
        if isinstance(exc, ImportError):
            message = (f"the Python at {sys.executable} cannot import {exc.name or exc}: "
                       "install the backend (add-on preferences, Install backend) or choose another Python")
        else:
            message = f"the model process could not start: {exc.__class__.__name__}: {exc}"
        try:
            from . import protocol

            protocol.write_message(stream_out, "error", {"job_id": None, "code": "backend_error", "message": message})
        except (ImportError, OSError):
            pass  # the client still sees the exit and quotes the log
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
