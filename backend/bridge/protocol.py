"""The messages between Blender (the client) and the model process (the worker).

Standard library + numpy only: both sides import it. Each request and event is a
dataclass here, with its fields and their types; `send` writes one as a frame (wire.py)
and `parse` turns a received frame back into one, refusing missing or mistyped fields.
Documented in docs/protocol.md.
"""

import types
import typing
from dataclasses import MISSING, dataclass, field, fields

import numpy as np

from .errors import BadRequest
from .options import check_family_takes, prompt_with_image_problem
from .prompts import clean_prompt
from .settings import GenerateSettings, ViewsSettings
from .wire import Message, write_message

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 4096  # paths, model names, devices in requests
MAX_MODEL_SLOTS = 8  # model folders one job may name


def _check_text(name: str, value) -> None:
    if value is not None and not (isinstance(value, str) and 0 < len(value) <= MAX_TEXT_LENGTH):
        raise BadRequest(f"'{name}' must be a non-empty string of at most {MAX_TEXT_LENGTH} characters")


# ---------------------------------------------------------------- requests (client -> worker)


@dataclass
class Generate:
    """Turn one image or prompt into a mesh: exactly one of image_path, image_bytes,
    image_pixels, or a prompt alone (a text job: settings' family must take text); an
    image with a prompt for a family whose image jobs take one (Family.prompt_with_image)."""

    TYPE: typing.ClassVar[str] = "generate"
    job_id: str
    settings: dict  # GenerateSettings.to_dict()
    # the model folder (or hub id); for a family whose jobs need several, a dict slot id ->
    # folder (backend/families/contract.py ModelSlot); None: the model already loaded
    model: str | dict | None = None
    device: str | None = None
    precision: str | None = None
    image_path: str | None = None
    image_bytes: np.ndarray | None = None  # an encoded file, 1-D uint8
    image_pixels: np.ndarray | None = None  # (H, W, 3|4) uint8 or float32, top row first
    prompt: str | None = None  # a text job's prompt (bridge/prompts.py says what is allowed)

    @property
    def task(self) -> str:
        return "image" if self.image_path is not None or self.image_bytes is not None or self.image_pixels is not None \
            else "text"

    def check(self):
        _check_id(self)
        settings = self.job_settings()
        _check_where(self)
        images = _count_images(self)
        if images > 1 or (images == 0 and self.prompt is None):
            raise BadRequest("a generate request needs exactly one of image_path, image_bytes, image_pixels, prompt")
        if self.prompt is not None:
            self.prompt = clean_prompt(self.prompt)  # PromptError (bad_prompt) says what is wrong
        check_family_takes(settings.family, self.task)  # WrongModelError: TripoSR and a prompt
        problem = prompt_with_image_problem(settings.family, images == 1, self.prompt is not None)
        if problem:
            raise BadRequest(problem)
        _check_image_arrays(self)

    def job_settings(self) -> GenerateSettings:
        try:
            return GenerateSettings.from_dict(self.settings)
        except ValueError as exc:
            raise BadRequest(f"bad settings: {exc}") from None


@dataclass
class GenerateViews:
    """Draw the object in one image from 40 cameras around it (the views job: Zero123-XL,
    backend/zero123/): exactly one of image_path, image_bytes, image_pixels."""

    TYPE: typing.ClassVar[str] = "generate_views"
    job_id: str
    settings: dict  # ViewsSettings.to_dict()
    # a folder holding the Zero123-XL and LoFTR folders, a Zero123-XL folder alone, or a
    # dict slot id -> folder (zero123_xl, loftr); None: the views models already loaded
    model: str | dict | None = None
    device: str | None = None
    precision: str | None = None  # auto (float16 on CUDA), float32, float16
    image_path: str | None = None
    image_bytes: np.ndarray | None = None
    image_pixels: np.ndarray | None = None

    task: typing.ClassVar[str] = "image"

    def check(self):
        _check_id(self)
        self.job_settings()
        _check_where(self)
        if _count_images(self) != 1:
            raise BadRequest("a generate_views request needs exactly one of image_path, image_bytes, image_pixels")
        _check_image_arrays(self)

    def job_settings(self) -> ViewsSettings:
        try:
            return ViewsSettings.from_dict(self.settings)
        except ValueError as exc:
            raise BadRequest(f"bad views settings: {exc}") from None


def _check_where(request) -> None:
    """The model, device and precision fields of a job request."""
    for name in ("device", "precision", "image_path"):
        _check_text(name, getattr(request, name))
    if isinstance(request.model, dict):
        if not 0 < len(request.model) <= MAX_MODEL_SLOTS or not all(isinstance(k, str) for k in request.model):
            raise BadRequest(f"'model' must name 1 to {MAX_MODEL_SLOTS} model folders by their slots")
        for slot, folder in request.model.items():
            _check_text(f"model[{slot[:64]!r}]", folder if isinstance(folder, str) else "")
    else:
        _check_text("model", request.model)


def _count_images(request) -> int:
    return sum(source is not None for source in (request.image_path, request.image_bytes, request.image_pixels))


def _check_image_arrays(request) -> None:
    if request.image_bytes is not None and (request.image_bytes.dtype != np.uint8 or request.image_bytes.ndim != 1):
        raise BadRequest("image_bytes must be a 1-D uint8 buffer")
    pixels = request.image_pixels
    if pixels is not None and (pixels.ndim != 3 or pixels.shape[2] not in (3, 4)
                               or pixels.dtype.name not in ("uint8", "float32")):
        raise BadRequest("image_pixels must be (height, width, 3 or 4) uint8 or float32")


@dataclass
class Cancel:
    TYPE: typing.ClassVar[str] = "cancel"
    job_id: str

    def check(self):
        _check_id(self)


@dataclass
class Ping:
    TYPE: typing.ClassVar[str] = "ping"
    id: str | None = None


@dataclass
class Shutdown:
    TYPE: typing.ClassVar[str] = "shutdown"


# ---------------------------------------------------------------- events (worker -> client)


@dataclass
class Ready:
    """Sent once when the worker is up (torch imported)."""

    TYPE: typing.ClassVar[str] = "ready"
    pid: int
    protocol: int
    log_path: str
    python: str
    torch: str


@dataclass
class Pong:
    TYPE: typing.ClassVar[str] = "pong"
    id: str | None = None


@dataclass
class Accepted:
    TYPE: typing.ClassVar[str] = "accepted"
    job_id: str


@dataclass
class ModelLoaded:
    TYPE: typing.ClassVar[str] = "model_loaded"
    job_id: str
    model_dir: str
    device: str
    precision: str
    reused: bool
    load_seconds: float
    weights_bytes: int = 0  # the loaded weights' size (what Release gives back)


@dataclass
class ModelUnloaded:
    """The worker let its model go after being idle (the process keeps running)."""

    TYPE: typing.ClassVar[str] = "model_unloaded"
    reason: str


@dataclass
class Progress:
    TYPE: typing.ClassVar[str] = "progress"
    job_id: str
    stage: str
    fraction: float
    detail: str | None = None  # a long job's words for it, e.g. "coarse 120/400, loss 0.031"


@dataclass
class Log:
    TYPE: typing.ClassVar[str] = "log"
    job_id: str | None
    message: str
    level: str = "info"


@dataclass
class Result:
    TYPE: typing.ClassVar[str] = "result"
    job_id: str
    device: str
    timings: dict
    vertices: np.ndarray  # (N, 3) float32, Blender's frame
    faces: np.ndarray  # (M, 3) int32
    colors: np.ndarray  # (N, 4) uint8
    prepared_image: np.ndarray  # (H, W, 3) uint8
    notes: list = field(default_factory=list)  # warnings for the user
    # with a texture (settings texture_size > 0): the mesh stage's UV map and images
    uvs: np.ndarray | None = None  # (M, 3, 2) float32, per face corner, v up
    base_color: np.ndarray | None = None  # (T, T, 3) uint8 sRGB, top row first
    normal_map: np.ndarray | None = None  # (T, T, 3) uint8 tangent space, top row first

    def check(self):
        faces = len(self.faces)
        if self.uvs is not None and (self.uvs.dtype != np.float32 or self.uvs.shape != (faces, 3, 2)):
            raise BadRequest(f"uvs must be float32 ({faces}, 3, 2), one UV per face corner")
        for name in ("base_color", "normal_map"):
            image = getattr(self, name)
            if image is not None and (image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3
                                      or image.shape[0] != image.shape[1]):
                raise BadRequest(f"{name} must be a square (T, T, 3) uint8 image")


@dataclass
class ViewsResult:
    """A views job's result: the 40 views in pose.json's order (8 first views, then the 4
    nearby views of each) with their poses, and the contact sheet."""

    TYPE: typing.ClassVar[str] = "views_result"
    job_id: str
    device: str
    timings: dict
    view_ids: list  # N ids: "0".."11", "<i>_<k>"
    poses: dict  # views.json: polar, elevation, polar_estimated, seed, intrinsics, notes, views [{id, ...}]
    pose_json: dict  # One-2-3-45's pose.json
    polar: float  # the input camera's polar angle (degrees from straight above)
    polar_estimated: bool
    views: np.ndarray  # (N, H, W, 3) uint8, top row first
    contact_sheet: np.ndarray  # (H, W, 3) uint8
    input_picture: np.ndarray  # (256, 256, 3) uint8: what the model saw
    notes: list = field(default_factory=list)

    def check(self):
        if self.views.dtype != np.uint8 or self.views.ndim != 4 or self.views.shape[3] != 3:
            raise BadRequest("views must be (N, H, W, 3) uint8")
        if len(self.view_ids) != len(self.views) or not all(isinstance(v, str) for v in self.view_ids):
            raise BadRequest(f"view_ids must name the {len(self.views)} views")
        for name in ("contact_sheet", "input_picture"):
            image = getattr(self, name)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise BadRequest(f"{name} must be an (H, W, 3) uint8 image")


@dataclass
class Error:
    """A job failed (job_id set), or a request or the worker itself did (job_id None)."""

    TYPE: typing.ClassVar[str] = "error"
    job_id: str | None
    code: str
    message: str


@dataclass
class Cancelled:
    TYPE: typing.ClassVar[str] = "cancelled"
    job_id: str
    message: str = "cancelled"


@dataclass
class Bye:
    TYPE: typing.ClassVar[str] = "bye"


REQUESTS = {cls.TYPE: cls for cls in (Generate, GenerateViews, Cancel, Ping, Shutdown)}
EVENTS = {cls.TYPE: cls for cls in (Ready, Pong, Accepted, ModelLoaded, ModelUnloaded, Progress, Log, Result,
                                    ViewsResult, Error, Cancelled, Bye)}
JOB_REQUESTS = (Generate, GenerateViews)  # the requests that start a job


# ---------------------------------------------------------------- previews of long jobs (issue 22)

MAX_PREVIEW_SIDE = 1024


@dataclass
class Preview:
    """A picture of the object a long job is making (Make-It-3D's current render), sent
    every few iterations; a client shows the latest. Nothing waits for it."""

    TYPE: typing.ClassVar[str] = "preview"
    job_id: str
    stage: str
    iteration: int  # iterations of the stage done
    image: np.ndarray  # (H, W, 3) uint8, top row first

    def check(self):
        image = self.image
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or not image.shape[0] \
                or not image.shape[1] or max(image.shape[:2]) > MAX_PREVIEW_SIDE:
            raise BadRequest(f"a preview image must be (H, W, 3) uint8, at most {MAX_PREVIEW_SIDE} pixels a side")


EVENTS[Preview.TYPE] = Preview


# ---------------------------------------------------------------- building and parsing


def _check_id(message):
    if not 0 < len(message.job_id) <= MAX_ID_LENGTH:
        raise BadRequest(f"a {message.TYPE} request needs a 'job_id' of 1 to {MAX_ID_LENGTH} characters")


def _field_types(cls) -> dict:
    """name -> (allowed types, is an array, required), from the dataclass's annotations."""
    hints = typing.get_type_hints(cls)
    described = {}
    for spec in fields(cls):
        hint = hints[spec.name]
        allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        described[spec.name] = (allowed, np.ndarray in allowed,
                                spec.default is MISSING and spec.default_factory is MISSING)
    return described


_FIELD_TYPES = {cls: _field_types(cls) for cls in (*REQUESTS.values(), *EVENTS.values())}


def _type_ok(value, allowed) -> bool:
    if value is None:
        return type(None) in allowed
    if isinstance(value, bool):  # bool is an int to Python, not to us
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return isinstance(value, tuple(t for t in allowed if t is not type(None)))


def parse(message: Message, table: dict):
    """A received frame -> the dataclass of its type in `table` (REQUESTS or EVENTS).

    Raises BadRequest naming the unknown type or the missing or mistyped field; fields
    the dataclass does not have are ignored (a newer peer may add some).
    """
    cls = table.get(message.type)
    if cls is None:
        kind = "request" if table is REQUESTS else "event"
        raise BadRequest(f"unknown {kind} type {message.type[:64]!r}")
    values = {}
    for name, (allowed, is_array, required) in _FIELD_TYPES[cls].items():
        source = message.arrays if is_array else message.fields
        if name not in source:
            if required:
                raise BadRequest(f"a {cls.TYPE} message needs '{name}'")
            continue
        value = source[name]
        if not _type_ok(value, allowed):
            raise BadRequest(f"'{name}' of a {cls.TYPE} message has the wrong type ({type(value).__name__})")
        values[name] = float(value) if float in allowed and isinstance(value, int) else value
    parsed = cls(**values)
    check = getattr(parsed, "check", None)
    if check is not None:
        check()
    return parsed


def job_id_of(message: Message) -> str | None:
    """The job a frame is about, when it names one (for errors about bad frames)."""
    job_id = message.fields.get("job_id")
    return job_id if isinstance(job_id, str) else None


def frame_parts(message) -> tuple:
    """(type, header fields, arrays): what wire.encode takes, for writers that queue frames."""
    header, arrays = {}, {}
    for name, (_, is_array, _) in _FIELD_TYPES[type(message)].items():
        value = getattr(message, name)
        if value is None and is_array:
            continue
        (arrays if is_array else header)[name] = value
    return message.TYPE, header, arrays


def send(stream, message) -> None:
    """Write one request or event as a whole frame (arrays travel as raw buffers)."""
    write_message(stream, *frame_parts(message))
