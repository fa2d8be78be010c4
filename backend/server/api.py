"""The HTTP API (Starlette): jobs in, status and results out, errors as codes and sentences.

    POST   /v1/jobs                  image file bytes (with ?prompt= for a family whose image
                                     jobs take one) or a text/plain prompt (settings in the
                                     query), or one `generate` or `generate_views` frame of
                                     the worker protocol -> 202 status
    GET    /v1/jobs/{id}             status; ?since=VERSION&wait=SECONDS long-polls
    GET    /v1/jobs/{id}/result      the `result` (`views_result`) frame of the worker protocol,
                                     or ?format=glb (a mesh job's)
    GET    /v1/jobs/{id}/preview     the latest `preview` frame of a long job (status says when)
    POST   /v1/jobs/{id}/cancel      ask a job to stop
    DELETE /v1/jobs/{id}             cancel if needed and forget the job and its result
    GET    /v1/health, /v1/version, /v1/openapi.json

Every path, known or not, sits behind auth.RequireBearerToken (see create_app). Bodies
are size-checked before and while they are read. Nothing is unpickled: requests are
image files or protocol frames (JSON header + raw arrays), responses JSON or frames.
"""

import asyncio
import contextlib
import io
import logging
import tempfile
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..bridge import protocol, wire
from ..bridge.errors import BackendError
from ..bridge.options import JOB_OPTIONS, check_family_takes, prompt_with_image_problem
from ..bridge.pixels import non_finite_problem
from ..bridge.prompts import MAX_PROMPT_BYTES, clean_prompt
from ..bridge.server_api import FRAME_TYPE
from ..bridge.settings import GenerateSettings
from ..families.registry import default_family
from .auth import RequireBearerToken
from .guard import Limits, RequestLimit
from .jobs import DONE, QueueFull, UnknownJob
from .openapi import build_openapi

log = logging.getLogger("image_to_3d.server")

GLB_TYPE = "model/gltf-binary"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/tiff", "image/bmp", "application/octet-stream")
PROMPT_TYPE = "text/plain"  # a text job: the body is the prompt (UTF-8)
PROMPT_PARAMETER = "prompt"  # an image body's prompt, for a family whose image jobs take one
MAX_WAIT_SECONDS = 30.0
SWEEP_SECONDS = 10.0
UPLOAD_SLOTS = 8  # bodies read at once: bounds the memory uploads in flight can take


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


# ---------------------------------------------------------------- request bodies


async def read_body(request: Request, limit: int, read_timeout: float, too_large: str | None = None) -> bytes:
    """The whole body, refusing it as soon as it is known to exceed `limit` bytes, and when
    a part of it is awaited longer than `read_timeout` (a stalled or vanished client)."""
    too_large = ApiError(413, "too_large", too_large or f"the request is larger than the server's limit of {limit >> 20} MiB")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "bad_request", "the Content-Length header is not a number")
        if int(declared) > limit:
            raise too_large
    chunks, size, stream = [], 0, request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(anext(stream), read_timeout)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise ApiError(408, "request_timeout", f"the request's body stopped arriving: nothing came for "
                                                   f"{read_timeout:g} s (a dropped connection?); send it again") from None
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    if size == 0:
        raise ApiError(400, "bad_request", "the request has no body: send an image file or a generate frame")
    return b"".join(chunks)


def settings_from_query(query, defaults: dict | None = None) -> dict:
    """GenerateSettings from query parameters (?resolution=256&remove_background=false),
    on top of `defaults` (a prompt's family is the first that reads text unless the query says otherwise)."""
    options = {option.name: option for option in JOB_OPTIONS}
    values = {}
    for name, text in query.multi_items():
        if name == PROMPT_PARAMETER:  # not a setting: image_prompt reads it
            continue
        option = options.get(name)
        if option is None:
            raise ApiError(400, "bad_request", f"unknown setting {name!r}: known are {', '.join(options)}")
        if name in values:
            raise ApiError(400, "bad_request", f"setting {name} is given twice")
        if option.kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ApiError(400, "bad_request", f"setting {name} must be true or false, got {text!r}")
            values[name] = text.lower() in ("true", "1")
            continue
        try:
            values[name] = option.kind(text)
        except ValueError:
            raise ApiError(400, "bad_request", f"setting {name} must be a {option.kind.__name__}, got {text!r}") from None
    return checked_settings({**(defaults or {}), **values})


def checked_settings(values) -> dict:
    try:
        return GenerateSettings.from_dict(values).to_dict()
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "bad_request", f"bad settings: {exc}") from None


def parse_frame(body: bytes) -> tuple[dict, object, str | None, str]:
    """(settings, image, prompt, kind) from one `generate` frame (kind "mesh": image_bytes,
    image_pixels or a prompt) or `generate_views` frame (kind "views"); no path."""
    stream = io.BytesIO(body)
    try:
        message = wire.FrameReader(stream).read()
        if message is None or stream.tell() != len(body):
            raise ApiError(400, "bad_request", "the body must hold exactly one frame")
        request = protocol.parse(message, protocol.REQUESTS)
    except (wire.ProtocolError, wire.StreamClosed) as exc:
        raise ApiError(400, "bad_request", f"malformed frame: {getattr(exc, 'message', exc)}") from None
    except BackendError as exc:  # bad_request; bad_prompt or wrong_model for a text job
        raise ApiError(400, exc.code, exc.message) from None
    if not isinstance(request, protocol.JOB_REQUESTS):
        raise ApiError(400, "bad_request", f"expected a generate or generate_views frame, got {request.TYPE!r}")
    if request.image_path is not None:
        raise ApiError(400, "bad_request", "the server reads no paths: send the image's bytes or pixels")
    if (request.model, request.device, request.precision) != (None, None, None):
        raise ApiError(400, "bad_request", "this server runs its own models: leave model, device and precision out")
    image = request.image_bytes.tobytes() if request.image_bytes is not None else request.image_pixels
    problem = non_finite_problem(image, "image_pixels") if request.image_pixels is not None else None
    if problem:  # refused here: 8-bit colours would hide them
        raise ApiError(400, "bad_image", problem)
    if isinstance(request, protocol.GenerateViews):
        return request.job_settings().to_dict(), image, None, "views"
    return checked_settings(request.settings), image, request.prompt, "mesh"


def prompt_from_body(body: bytes, settings: dict) -> str:
    """The prompt of a text/plain body (at most MAX_PROMPT_BYTES, read_body saw to it),
    checked as every client checks it."""
    try:
        prompt = clean_prompt(body.decode("utf-8"))
        check_family_takes(settings["family"], "text")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_prompt", "the prompt is not UTF-8 text") from None
    except BackendError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    return prompt


def image_prompt(query, settings: dict) -> str | None:
    """The ?prompt= of an image body, checked as every client checks it; None when none is
    given and the family takes none."""
    given = query.getlist(PROMPT_PARAMETER)
    if len(given) > 1:
        raise ApiError(400, "bad_request", "the prompt is given twice")
    try:
        prompt = clean_prompt(given[0]) if given else None
    except BackendError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    problem = prompt_with_image_problem(settings["family"], True, prompt is not None)
    if problem:
        raise ApiError(400, "bad_request", problem)
    return prompt


def preview_frame(job) -> Response:
    """The job's latest preview as the worker protocol's `preview` event."""
    preview = job.preview
    event = protocol.Preview(job_id=job.job_id, stage=preview["stage"], iteration=preview["iteration"],
                             image=preview["image"])
    body = b"".join(bytes(part) for part in wire.encode(*protocol.frame_parts(event)))
    return Response(body, media_type=FRAME_TYPE, headers={"X-Preview-Number": str(preview["number"])})


# ---------------------------------------------------------------- responses


def result_frame(job) -> Response:
    """The worker protocol's `result` event, byte for byte what a local worker sends.

    Its parts go out as they are (the arrays' own buffers), not joined into one copy:
    a 500k-vertex mesh is 20 MB.
    """
    kind = protocol.ViewsResult if job.kind == "views" else protocol.Result
    event = kind(job_id=job.job_id, **job.result.fields, **job.result.arrays)
    parts = wire.encode(*protocol.frame_parts(event))
    length = sum(memoryview(part).nbytes for part in parts)
    return StreamingResponse(iter(parts), media_type=FRAME_TYPE, headers={"Content-Length": str(length)})


def _glb_bytes(arrays: dict) -> bytes:
    from ..mesh.export import write_mesh  # trimesh: imported only when a GLB is asked for

    with tempfile.TemporaryDirectory(prefix="image_to_3d_glb_") as folder:
        path = write_mesh(Path(folder) / "mesh.glb", arrays["vertices"], arrays["faces"], arrays["colors"],
                          arrays.get("uvs"), arrays.get("base_color"), arrays.get("normal_map"))
        return path.read_bytes()


# ---------------------------------------------------------------- the application


def create_app(*, table, pool, token: str, version_info: dict, replica_status, max_upload_bytes: int,
               limits: Limits = Limits()):
    """The ASGI application, token gate outermost (inside it, the bound on requests served).

    pool: starts and cancels jobs (runner.ReplicaPool or a test double);
    replica_status: async () -> {"running": int, "target": int}; limits: guard.Limits
    (the body's read timeout, the wait for an upload slot, requests served at once).
    """

    upload_slots = asyncio.Semaphore(UPLOAD_SLOTS)

    def job_or_404(request: Request):
        try:
            return table.get(request.path_params["job_id"])
        except UnknownJob:
            raise ApiError(404, "unknown_job", "no such job: it never existed, or it ended and its result expired") from None

    async def submit(request: Request):
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != FRAME_TYPE and kind != PROMPT_TYPE and kind not in IMAGE_TYPES:
            raise ApiError(415, "unsupported_media_type",
                           f"send an image file ({', '.join(IMAGE_TYPES)}), a {PROMPT_TYPE} prompt or a {FRAME_TYPE}")
        if kind == FRAME_TYPE and request.query_params:
            raise ApiError(400, "bad_request", "a frame carries its settings inside: leave the query empty")
        settings, prompt, job_kind = None, None, "mesh"
        if kind != FRAME_TYPE:
            # a prompt goes to the first family that reads text (Shap-E) unless the query says otherwise
            text_family = {"family": default_family("text").identifier}
            settings = settings_from_query(request.query_params, text_family if kind == PROMPT_TYPE else None)
        try:  # a client's wait for a slot is bounded too
            await asyncio.wait_for(upload_slots.acquire(), limits.upload_wait)
        except TimeoutError:
            raise ApiError(503, "server_busy", f"{UPLOAD_SLOTS} uploads are being received: try again in a moment",
                           {"Retry-After": "5"}) from None
        try:
            if kind == PROMPT_TYPE:  # a prompt is small: its size is checked before anything decodes it
                limit = min(max_upload_bytes, MAX_PROMPT_BYTES)
                body = await read_body(request, limit, limits.body_read_timeout,
                                       f"a text/plain prompt may be at most {limit:,} bytes")
            else:
                body = await read_body(request, max_upload_bytes, limits.body_read_timeout)
        finally:
            upload_slots.release()
        # decoding, checking and copying a body of up to --max-upload-mb: off the event loop
        if kind == FRAME_TYPE:
            settings, image, prompt, job_kind = await asyncio.to_thread(parse_frame, body)
        elif kind == PROMPT_TYPE:
            if PROMPT_PARAMETER in request.query_params:
                raise ApiError(400, "bad_request", "a text/plain body is the prompt: leave ?prompt= out")
            image, prompt = None, await asyncio.to_thread(prompt_from_body, body, settings)
        else:
            image, prompt = body, image_prompt(request.query_params, settings)
        try:
            job = table.create(settings, image, prompt, job_kind)
        except QueueFull:
            raise ApiError(503, "server_busy",
                           f"the server already holds {table.max_active} unfinished jobs: try again in a moment",
                           {"Retry-After": "5"}) from None
        pool.start(job)
        return JSONResponse(job.status(table.result_ttl), status_code=202,
                            headers={"Location": f"/v1/jobs/{job.job_id}"})

    async def status(request: Request):
        job = job_or_404(request)
        try:
            since = int(request.query_params["since"]) if "since" in request.query_params else None
            wait = min(float(request.query_params.get("wait", 0)), MAX_WAIT_SECONDS)
            if not wait >= 0:  # also NaN
                raise ValueError(wait)
        except ValueError:
            raise ApiError(400, "bad_request", "'since' must be an integer and 'wait' a number of seconds") from None
        await job.wait_for_change(since, wait)
        return JSONResponse(job.status(table.result_ttl))

    async def result(request: Request):
        job = job_or_404(request)
        fmt = request.query_params.get("format", "frame")
        if fmt not in ("frame", "glb"):
            raise ApiError(400, "bad_request", f"unknown format {fmt!r}: choose frame or glb")
        if job.state != DONE:
            if job.error:
                raise ApiError(409, job.error[0], job.error[1])
            raise ApiError(409, "not_ready", f"the job is {job.state}: poll its status until it is done")
        if fmt == "frame":
            return result_frame(job)
        if job.kind != "mesh":
            raise ApiError(400, "bad_request", "a views job has no mesh: fetch its frame (format=frame)")
        return Response(await asyncio.to_thread(_glb_bytes, job.result.arrays), media_type=GLB_TYPE)

    async def preview(request: Request):
        job = job_or_404(request)
        if job.preview is None:
            raise ApiError(409, "not_ready", "the job has sent no preview (yet): its status says when it has")
        return preview_frame(job)

    async def cancel(request: Request):
        job = job_or_404(request)
        if not job.is_terminal:
            pool.cancel(job)
        return JSONResponse(job.status(table.result_ttl), status_code=202)

    async def forget(request: Request):
        job = job_or_404(request)
        if not job.is_terminal:
            pool.cancel(job)
        table.remove(job.job_id)
        return Response(status_code=204)

    async def health(request: Request):
        replicas = await replica_status()
        ok = replicas.get("running", 0) > 0
        return JSONResponse({"status": "ok" if ok else "degraded", "replicas": replicas,
                             "jobs": table.counts(), "max_active": table.max_active},
                            status_code=200 if ok else 503)

    async def version(request: Request):
        return JSONResponse(version_info)

    openapi = build_openapi(max_upload_bytes)

    async def openapi_document(request: Request):
        return JSONResponse(openapi)

    async def on_api_error(request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    async def on_http_error(request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return error_response(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}")

    async def on_unexpected(request, exc: Exception):
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "the server hit an internal error; its log has the details")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async def sweep_forever():
            while True:
                await asyncio.sleep(SWEEP_SECONDS)
                table.sweep()

        sweeper = asyncio.create_task(sweep_forever())
        try:
            yield
        finally:
            sweeper.cancel()
            for job in table.jobs():
                if not job.is_terminal:
                    pool.cancel(job)

    routes = [
        Route("/v1/jobs", submit, methods=["POST"]),
        Route("/v1/jobs/{job_id}", status, methods=["GET"]),
        Route("/v1/jobs/{job_id}", forget, methods=["DELETE"]),
        Route("/v1/jobs/{job_id}/result", result, methods=["GET"]),
        Route("/v1/jobs/{job_id}/preview", preview, methods=["GET"]),
        Route("/v1/jobs/{job_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/health", health, methods=["GET"]),
        Route("/v1/version", version, methods=["GET"]),
        Route("/v1/openapi.json", openapi_document, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_error, Exception: on_unexpected},
    )
    return RequireBearerToken(RequestLimit(app, limits.max_requests), token)
