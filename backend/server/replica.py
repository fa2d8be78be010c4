"""The Serve deployment: the server's models in every replica (one replica per GPU), running
the job function.

A replica loads each model once - one per family and input, e.g. TripoSR, Shap-E's text
model and its image model, each from its own --model - and runs each job with the model
its settings' family and its input (image or prompt) call for. It runs `backend.pipeline.generate_mesh` - the same
function the local worker and the CLI run, through the same out-of-memory fallback
(generate_mesh_within_memory) - in a pool of `--max-batch` threads, so the event loop
stays free to stream progress and to notice cancellation. `generate` is an async
generator: the front consumes it over one streaming handle call and so learns the job's
progress and result without any shared store.

Concurrency: `--concurrency` C jobs run at once on a replica's threads, so one job's CPU
work (preparing the image, the mesh arrays, the transfer) overlaps another's GPU work;
each job is still computed alone, with results equal to the in-process job's.

Encoder batching: with `--max-batch` B > 1, each job's encode step goes through an
EncodeBatcher (encode_batcher.py), which gathers the prepared images of up to B jobs
that reach it within BATCH_WAIT_S and encodes them in one forward pass
(its engine's encode_batch); every other stage stays per job. One job function still runs
everything: generate_mesh, with its `encode` step handed to the batcher. (Serve's own
@serve.batch serves async handlers; our jobs run on threads, and it needs a replica
context, so it could not be tested in-process.)
"""

import asyncio
import functools
import logging
import os
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass

from ..bridge.errors import BackendError, OutOfMemoryError, WrongModelError
from ..bridge.settings import GenerateSettings, ViewsSettings
from ..families.registry import EXTRA_JOBS_BY_NAME, VIEWS, declared
from .encode_batcher import EncodeBatcher
from .jobs import result_arrays

log = logging.getLogger("ray.serve")  # Serve's replica logger: lines carry the replica id
PROGRESS_INTERVAL = 0.1  # seconds between progress events of one stage (0 and 1 always go)
BATCH_WAIT_S = 0.02  # how long the first image of an encoder batch waits for others


class MeshModel:
    """The deployment class (wrapped by serve.deployment in ray_setup.deploy)."""

    def __init__(self, model: str | list, device: str, precision: str, concurrency: int, max_batch: int,
                 torch_threads: int | None):
        """model: one model folder or hub id, or a list of them (one per family and input)."""
        bind_internal_grpc_to_node_ip()  # before Serve starts that server, right after us
        import torch

        if torch_threads:
            torch.set_num_threads(torch_threads)
        from .. import pipeline
        from ..model_folder import model_kind

        self._pipeline = pipeline
        self._models = {}  # (family, task) -> the loaded model
        for name in [model] if isinstance(model, str) else model:
            family, task = model_kind(name)  # on this node: the folder is here
            # the views job has its own precisions: float16 on a GPU as One-2-3-45 (auto)
            held_precision = "auto" if family in EXTRA_JOBS_BY_NAME else precision
            loaded = pipeline.load_model(name, device, held_precision, family, task)
            self._models[(family, task)] = loaded
            log.info("model %s loaded on %s (%s) in %.2f s", loaded.model_dir, loaded.device, loaded.precision,
                     loaded.load_seconds)
        self._loaded = next(iter(self._models.values()))  # for what all models share (the device)
        self._pool = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="mesh-job")
        self.batcher, self._batched = None, None
        # the first model whose engine encodes batches (TripoSR's) gets the batcher; others run alone
        for (family, _), loaded in self._models.items():
            encode_batch = getattr(declared(family).engine(), "encode_batch", None)
            if max_batch > 1 and encode_batch is not None:
                self.batcher = EncodeBatcher(functools.partial(encode_batch, loaded), max_batch, BATCH_WAIT_S)
                self._batched = loaded
                break
        self._replica = _replica_id()

    def describe(self) -> dict:
        import torch

        loaded = self._loaded
        models = [{"family": family, "task": task, "model": held.model_dir.name, "precision": held.precision}
                  for (family, task), held in self._models.items()]
        return {"device": loaded.device, "precision": loaded.precision,
                "model": ", ".join(entry["model"] for entry in models), "models": models,
                "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "replica": self._replica,
                "encoder_batches": dict(self.batcher.batch_sizes) if self.batcher else {}}

    def model_for(self, settings: GenerateSettings, task: str):
        """The loaded model of the job's family and input; WrongModelError naming what the server runs."""
        return self._model(settings.family, task)

    def _model(self, family: str, task: str):
        loaded = self._models.get((family, task))
        if loaded is None:
            held = ", ".join(f"{declared(f).label} ({t})" for f, t in self._models)
            wanted = f"{declared(family).label} for {'text prompts' if task == 'text' else 'images'}"
            raise WrongModelError(f"this server runs {held}, not {wanted}: its admin can add that model "
                                  "(python -m backend serve --model ... --model ...)")
        return loaded

    async def generate(self, job_id: str, settings: dict, image, prompt: str | None = None):
        """Events: started, progress..., then exactly one of result or error.

        A cancelled call (the front's handle.cancel) arrives as CancelledError at an
        await; the job's should_cancel then turns true and generate_mesh stops at its
        next check. We wait for the thread before letting go, so the replica never runs
        more jobs at once than its concurrency.
        """
        job_settings = GenerateSettings.from_dict(settings)
        try:
            loaded = self.model_for(job_settings, "image" if image is not None else "text")
        except WrongModelError as exc:
            yield {"event": "error", "code": exc.code, "message": exc.message}
            return

        def job(hooks):
            return self._pipeline.generate_mesh_within_memory(
                loaded, image, job_settings, hooks.progress, hooks.should_cancel,
                warn=lambda message: log.warning("job %s: %s", job_id, message),
                remedy="",  # the client cannot switch the server to the CPU
                encode=self.batcher.encode if self.batcher and loaded is self._batched else None, prompt=prompt,
                detail=hooks.detail, preview=hooks.preview,
            )

        async with aclosing(self._stream(job_id, job, outcome_event)) as stream:  # its finally waits for the job
            async for event in stream:
                yield event

    async def generate_views(self, job_id: str, settings: dict, image):
        """A views job (registry.VIEWS), with the same events as generate; its result
        event carries the views' fields and arrays (protocol.ViewsResult's)."""
        job_settings = ViewsSettings.from_dict(settings)
        try:
            loaded = self._model(VIEWS.identifier, "image")
        except WrongModelError as exc:
            yield {"event": "error", "code": exc.code, "message": exc.message}
            return
        engine = VIEWS.engine()

        def job(hooks):
            return engine.run_views(loaded, image, job_settings, hooks.progress, hooks.should_cancel,
                                    remedy="ask the server's admin for a GPU with more free memory")

        async with aclosing(self._stream(job_id, job, views_outcome_event)) as stream:  # its finally waits for the job
            async for event in stream:
                yield event

    async def _stream(self, job_id: str, job, outcome):
        """Run job(hooks: Hooks) on the pool; yield started, progress (and preview)...,
        then outcome(job_id, future, device)."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        last_sent = {}

        def progress(stage, fraction):  # called on the job's thread
            now = time.monotonic()
            if fraction in (0.0, 1.0) or now - last_sent.get(stage, 0.0) >= PROGRESS_INTERVAL:
                last_sent[stage] = now
                event = {"event": "progress", "stage": stage, "fraction": float(fraction)}
                loop.call_soon_threadsafe(events.put_nowait, event)

        def detail(stage, fraction, text):  # progress with words, throttled as progress is
            now = time.monotonic()
            if fraction in (0.0, 1.0) or now - last_sent.get(stage, 0.0) >= PROGRESS_INTERVAL:
                last_sent[stage] = now
                event = {"event": "progress", "stage": stage, "fraction": float(fraction), "detail": text}
                loop.call_soon_threadsafe(events.put_nowait, event)

        def preview(image, stage, iteration):  # a long job's picture of its object, every few iterations
            event = {"event": "preview", "stage": stage, "iteration": int(iteration), "image": image}
            loop.call_soon_threadsafe(events.put_nowait, event)

        hooks = Hooks(progress, stop.is_set, detail, preview)
        future = loop.run_in_executor(self._pool, functools.partial(job, hooks))
        future.add_done_callback(lambda _: events.put_nowait(None))
        log.info("job %s started", job_id)
        try:
            yield {"event": "started", "replica": self._replica, "device": self._loaded.device}
            while (event := await events.get()) is not None:
                yield event
            yield outcome(job_id, future, self._loaded.device)
        finally:
            if not future.done():
                stop.set()
                log.info("job %s cancelled; waiting for its current stage to stop", job_id)
                await asyncio.wait([future])


@dataclass
class Hooks:
    """What a job on the replica's threads reports through (each call queues an event)."""

    progress: object  # (stage, fraction)
    should_cancel: object  # () -> bool
    detail: object  # (stage, fraction, text): progress in words
    preview: object  # (image, stage, iteration)


def _failure_event(job_id: str, future, memory_remedy: str) -> dict | None:
    """The error event of a job that failed (a code and a sentence), or None."""
    try:
        future.result()
    except BackendError as exc:
        log.info("job %s failed (%s): %s", job_id, exc.code, exc.message)
        return {"event": "error", "code": exc.code, "message": exc.message}
    except MemoryError:
        return {"event": "error", "code": OutOfMemoryError.code,
                "message": f"the server ran out of memory on this job: {memory_remedy}"}
    except Exception as exc:  # noqa: BLE001 (the traceback stays in the replica's log)
        log.error("job %s: unexpected error\n%s", job_id, traceback.format_exc())
        return {"event": "error", "code": BackendError.code,
                "message": f"unexpected error in the model server: {exc.__class__.__name__}: {exc}"}
    return None


def views_outcome_event(job_id: str, future, device: str) -> dict:
    """The last event of a views job: its views (fields and arrays), or its error."""
    failure = _failure_event(job_id, future, "ask the server's admin for more memory")
    if failure is not None:
        return failure
    fields, arrays = VIEWS.engine().transfer_parts(future.result())
    log.info("job %s done: %d views", job_id, len(arrays["views"]))
    return {"event": "result", "device": device, "timings": fields.pop("timings"), "notes": fields.pop("notes"),
            "fields": fields, "arrays": arrays}


def outcome_event(job_id: str, future, device: str) -> dict:
    """The last event of a job: its result, or its error as a code and a sentence."""
    failure = _failure_event(job_id, future, "lower the resolution setting")
    if failure is not None:
        return failure
    result = future.result()
    log.info("job %s done: %d vertices", job_id, len(result.vertices))
    arrays = result_arrays(result.vertices, result.faces, result.colors, result.prepared_image, result.uvs,
                           result.base_color, result.normal_map)
    return {"event": "result", "device": device, "timings": result.timings, "notes": result.notes, "arrays": arrays}


def _replica_id() -> str:
    try:
        from ray import serve

        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # noqa: BLE001 (outside Serve, e.g. a unit test)
        return f"pid{os.getpid()}"


def bind_internal_grpc_to_node_ip() -> bool:
    """Make the replica's internal gRPC server listen on this node's address, not on all.

    Ray Serve 2.60 starts an inter-deployment gRPC server in every replica bound to
    "[::]:0", whatever the node address (serve/_private/replica.py, _on_initialized). It
    is token-protected when Ray's token auth is on, but it is the only Ray socket that
    would still face the network of a one-machine server. We make no inter-deployment
    calls, so binding it to the node address (127.0.0.1 for a local server) loses
    nothing. It runs in the deployment's constructor, which Serve calls before it binds.
    If a Ray version moves this code, nothing is patched and the loopback test fails.
    """
    try:
        import ray
        from ray.serve._private import replica as serve_replica
    except ImportError:
        return False
    original = getattr(serve_replica, "add_port_to_grpc_server", None)
    if original is None or getattr(original, "binds_node_ip", False):
        return False
    node_ip = ray.util.get_node_ip_address()
    host = f"[{node_ip}]" if ":" in node_ip else node_ip

    def add_port_on_node_ip(server, address):
        if address.startswith("[::]:"):
            address = host + address[len("[::]"):]
        return original(server, address)

    add_port_on_node_ip.binds_node_ip = True
    serve_replica.add_port_to_grpc_server = add_port_on_node_ip
    return True
