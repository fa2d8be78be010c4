"""The worker's request loop: requests in, one job at a time through the pipeline, events out.

A reader thread takes requests while a job runs, so `cancel` and `ping` answer at once;
the main thread runs the jobs. The model stays loaded between jobs and is reloaded only
when a job asks for another folder, device or precision (or another family's model).
"""

import logging
import os
import queue
import sys
import threading
import time
import traceback
from pathlib import Path

from ..bridge import protocol, wire
from ..bridge.errors import BackendError, BadRequest, Cancelled, OutOfMemoryError
from ..bridge.image_files import checked_path
from ..bridge.settings import GenerateSettings, job_resolution
from ..families.registry import VIEWS
from ..model_folder import resolve_model_folders

PROGRESS_INTERVAL = 0.1  # seconds between progress events of one stage
MAX_QUEUED_JOBS = 16  # the client sends one at a time; more means a runaway sender
# Test-only: when set, the worker prints junk to fd 1 and 2 at every progress step,
# standing in for a chatty library. Harmless: the junk only reaches the log.
NOISE_ENV = "IMAGE_TO_3D_WORKER_TEST_NOISE"

log = logging.getLogger("image_to_3d.worker")


def job_inputs(request):
    """(settings, image, prompt) of a generate or generate_views request (image None for a
    text job, prompt None for an image job of a family that takes no prompt with it, and
    for views); BackendError naming what is wrong."""
    settings, prompt = request.job_settings(), getattr(request, "prompt", None)
    if request.image_path is not None:
        return settings, checked_path(Path(request.image_path)), prompt
    if request.image_bytes is not None:
        return settings, request.image_bytes.tobytes(), prompt
    return settings, request.image_pixels, prompt


def job_kind(request) -> tuple[str, str]:
    """(family or extra job, input) whose model a request needs."""
    if isinstance(request, protocol.GenerateViews):
        return VIEWS.identifier, "image"
    return request.job_settings().family, request.task


class WorkerServer:
    def __init__(self, frames_in, stream_out, log_path: Path, idle_unload: float = 0.0):
        """idle_unload: seconds without a job after which a model on a GPU is let go (0: never)."""
        self._idle_unload = idle_unload
        self._reader = wire.FrameReader(frames_in)
        self._out = stream_out
        self._out_lock = threading.Lock()
        self._log_path = log_path
        self._jobs = queue.Queue(MAX_QUEUED_JOBS + 1)  # protocol.Generate requests, or None to stop
        self._cancelled = set()  # job ids asked to cancel (running or queued)
        self._stopping = False
        self._loaded = None
        self._loaded_request = None  # (model, device, precision, family, task) as last asked for
        self._loaded_folders = None  # {slot id: folder} of the loaded model
        self._noisy = bool(os.environ.get(NOISE_ENV))

    # -- output

    def send(self, event):
        try:
            with self._out_lock:
                protocol.send(self._out, event)
        except (BrokenPipeError, OSError):
            log.warning("the client closed the pipe: exiting")
            os._exit(0)
        except (wire.ProtocolError, ValueError, TypeError) as exc:
            # an event that cannot be encoded (a NaN in its fields, say) must not leave the
            # client waiting: say so for its job instead
            log.error("could not send %s: %s", event.TYPE, exc)
            if not isinstance(event, protocol.Error):
                self.send(protocol.Error(job_id=getattr(event, "job_id", None), code=BackendError.code,
                                         message=f"the model process could not send its {event.TYPE} ({exc})"))

    def send_error(self, job_id, code, message):
        log.info("job %s failed (%s): %s", job_id, code, message)
        self.send(protocol.Error(job_id=job_id, code=code, message=message))

    def send_log(self, job_id, message, level="info"):
        log.info("job %s: %s", job_id, message)
        self.send(protocol.Log(job_id=job_id, message=message, level=level))

    # -- the reader thread: every request lands here, also while a job runs

    def read_requests(self):
        while True:
            try:
                frame = self._reader.read()
            except wire.ProtocolError as exc:
                self.send_error(exc.job_id, BadRequest.code, f"malformed frame: {exc.message}")
                continue
            except wire.StreamClosed as exc:
                frame = None
                log.warning("%s", exc)
            if frame is None:
                log.info("the client closed our input: exiting")
                os._exit(0)
            job_id = protocol.job_id_of(frame)
            try:
                self.handle(protocol.parse(frame, protocol.REQUESTS))
            except BackendError as exc:
                self.send_error(job_id, exc.code, exc.message)
            except Exception as exc:  # noqa: BLE001 - this thread must outlive any one request
                log.error("request %s could not be handled\n%s", frame.type[:64], traceback.format_exc())
                self.send_error(job_id, BadRequest.code, f"the request could not be handled: {exc!r}")

    def handle(self, request):
        if isinstance(request, protocol.Ping):
            self.send(protocol.Pong(id=request.id))
        elif isinstance(request, protocol.Cancel):
            self._cancelled.add(request.job_id)
        elif isinstance(request, protocol.Shutdown):
            self._stopping = True
            self._jobs.put(None)
        else:
            job_inputs(request)  # refuse a bad request now, not when its turn comes
            if self._jobs.qsize() >= MAX_QUEUED_JOBS:
                raise BadRequest(f"the model process already has {MAX_QUEUED_JOBS} jobs waiting: send one at a time")
            self._jobs.put(request)

    # -- the main thread: jobs, one at a time

    def serve(self):
        import torch

        from .. import pipeline

        threading.Thread(target=self.read_requests, name="requests", daemon=True).start()
        self.send(protocol.Ready(pid=os.getpid(), protocol=wire.VERSION, log_path=str(self._log_path),
                                 python=sys.version.split()[0], torch=torch.__version__))
        log.info("ready (torch %s)", torch.__version__)
        while True:
            try:
                request = self._jobs.get(timeout=self._idle_unload or None)
            except queue.Empty:
                self.unload_if_on_gpu()
                continue
            if request is None:
                break
            self.run_job(request, pipeline)
        self.send(protocol.Bye())
        log.info("shut down on request")

    def run_job(self, request: protocol.Generate, pipeline):
        job_id = request.job_id
        settings = None
        try:
            if job_id in self._cancelled or self._stopping:
                raise Cancelled()
            settings, image, prompt = job_inputs(request)
            self.send(protocol.Accepted(job_id=job_id))
            loaded = self.ensure_model(request, pipeline)
            if isinstance(request, protocol.GenerateViews):
                self.draw_views(job_id, settings, image, loaded)
                return
            result = self.generate(job_id, settings, image, loaded, pipeline, prompt)
        except Cancelled as exc:
            log.info("job %s cancelled", job_id)
            self.send(protocol.Cancelled(job_id=job_id, message=exc.message))
        except BackendError as exc:
            self.send_error(job_id, exc.code, exc.message)
        except MemoryError:
            resolution = job_resolution(settings) if isinstance(settings, GenerateSettings) else None
            at = f" at resolution {resolution}: lower the resolution setting" if resolution else ": close other programs"
            message = f"the computer ran out of memory{at}"
            self.send_error(job_id, OutOfMemoryError.code, message)
        except Exception as exc:  # noqa: BLE001 - one bad job must not end the worker
            log.error("job %s: unexpected error\n%s", job_id, traceback.format_exc())
            self.send_error(job_id, BackendError.code, f"unexpected error in the model process: {exc.__class__.__name__}: {exc} (details in {self._log_path})")
        else:
            self.send(protocol.Result(
                job_id=job_id, device=loaded.device, timings=result.timings, vertices=result.vertices,
                faces=result.faces, colors=result.colors, prepared_image=result.prepared_image, notes=result.notes,
                uvs=result.uvs, base_color=result.base_color, normal_map=result.normal_map,
            ))
            log.info("job %s done: %d vertices, %d faces", job_id, len(result.vertices), len(result.faces))
        finally:
            self._cancelled.discard(job_id)

    def unload_if_on_gpu(self):
        """Idle long enough: give the GPU's memory back (a model on the CPU stays loaded,
        since reloading costs more than the memory it holds)."""
        if self._loaded is None or self._loaded.device == "cpu":
            return
        log.info("idle for %.0f s: unloading the model from %s", self._idle_unload, self._loaded.device)
        from .. import pipeline  # imported by serve() already

        self._loaded, self._loaded_request = None, None
        pipeline.free_gpu_memory()
        self.send(protocol.ModelUnloaded(reason=f"idle for {self._idle_unload / 60:.0f} min"))

    def ensure_model(self, request: protocol.Generate, pipeline):
        """The loaded model for this job's model/device/precision and family/input; loads
        only on a change."""
        family, task = job_kind(request)
        default_precision = "auto" if isinstance(request, protocol.GenerateViews) else "float32"
        wanted = (request.model, request.device or "auto", request.precision or default_precision, family, task)
        if request.model is None:
            if self._loaded is None:
                raise BadRequest("no model given and none loaded")
            wanted = (*self._loaded_request[:3], family, task)
        reused = self._loaded is not None and wanted == self._loaded_request
        folders = None
        if not reused:
            folders = resolve_model_folders(wanted[0], family, task)
        if not reused and self._loaded is not None and (family, task) == (self._loaded.family, self._loaded.task):
            # the same folders asked for differently (e.g. "auto" vs "cpu") still reuse
            from ..devices import resolve_device

            same_device = resolve_device(wanted[1]).type == self._loaded.device
            reused = folders == self._loaded_folders and same_device and wanted[2] == self._loaded.precision
        if not reused:
            self.send_log(request.job_id, f"loading model {wanted[0]} (device {wanted[1]}, {wanted[2]})")
            self._loaded = None  # free the old model before loading another
            pipeline.free_gpu_memory()
            self._loaded = pipeline.load_model(folders, *wanted[1:])
            self._loaded_folders = folders
        self._loaded_request = wanted
        loaded = self._loaded
        self.send(protocol.ModelLoaded(
            job_id=request.job_id, model_dir=str(loaded.model_dir), device=loaded.device,
            precision=loaded.precision, reused=reused, load_seconds=0.0 if reused else loaded.load_seconds,
            weights_bytes=loaded.weights_bytes,
        ))
        return loaded

    def job_hooks(self, job_id):
        """(progress, should_cancel, detail, preview) of one job."""
        last_sent = {}

        def progress(stage, fraction):
            now = time.monotonic()
            if fraction in (0.0, 1.0) or now - last_sent.get(stage, 0.0) >= PROGRESS_INTERVAL:
                last_sent[stage] = now
                self.send(protocol.Progress(job_id=job_id, stage=stage, fraction=float(fraction)))
            if self._noisy:
                _print_test_noise()

        def detail(stage, fraction, text):  # progress with words (a long job's iteration and loss)
            now = time.monotonic()
            if fraction in (0.0, 1.0) or now - last_sent.get(stage, 0.0) >= PROGRESS_INTERVAL:
                last_sent[stage] = now
                self.send(protocol.Progress(job_id=job_id, stage=stage, fraction=float(fraction), detail=text))

        def preview(image, stage, iteration):  # every few iterations of a long job: each goes
            self.send(protocol.Preview(job_id=job_id, stage=stage, iteration=int(iteration), image=image))

        def should_cancel():
            return job_id in self._cancelled or self._stopping

        return progress, should_cancel, detail, preview

    def generate(self, job_id, settings, image, loaded, pipeline, prompt=None):
        progress, should_cancel, detail, preview = self.job_hooks(job_id)
        return pipeline.generate_mesh_within_memory(
            loaded, image, settings, progress, should_cancel,
            warn=lambda message: self.send_log(job_id, message, "warning"), prompt=prompt,
            detail=detail, preview=preview,
        )

    def draw_views(self, job_id, settings, image, loaded):
        """A views job through its one job function, then its views_result."""
        engine = VIEWS.engine()
        progress, should_cancel, _, _ = self.job_hooks(job_id)
        result = engine.run_views(loaded, image, settings, progress, should_cancel)
        fields, arrays = engine.transfer_parts(result)
        self.send(protocol.ViewsResult(job_id=job_id, device=loaded.device, **fields, **arrays))
        log.info("job %s done: %d views", job_id, len(arrays["views"]))


def _print_test_noise():
    print("test noise on stdout I3D\x01 {not a frame}")
    print("test noise on stderr", file=sys.stderr)
    os.write(1, b"I3D\x01\xff\xff raw noise on fd 1\n")
    os.write(2, b"raw noise on fd 2\n")
