"""Errors a user can act on, each with a stable code that crosses the worker pipe.

Standard library only: the Blender side maps codes back to these classes without torch.
The table of codes, ERRORS_BY_CODE, is at the end; docs/protocol.md lists them.
"""


class BackendError(Exception):
    """A failure with a message meant for the user; `code` is stable across versions."""

    code = "backend_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InputImageError(BackendError):
    code = "bad_image"


class CheckpointError(BackendError):
    code = "bad_checkpoint"


class ModelNotFoundError(BackendError):
    code = "model_not_found"


class DeviceError(BackendError):
    code = "bad_device"


class BackgroundRemovalError(BackendError):
    code = "background_removal"


class EmptySurfaceError(BackendError):
    code = "empty_surface"


class OutOfMemoryError(BackendError):
    code = "out_of_memory"


class PromptError(BackendError):
    """A prompt a text-to-3D model cannot use: empty, not text, or far too long."""

    code = "bad_prompt"


class WrongModelError(BackendError):
    """A model folder (or loaded model) of another family or input than the job asks for."""

    code = "wrong_model"


class AtlasFullError(BackendError):
    """The mesh's UV charts do not fit the texture asked for."""

    code = "atlas_full"


class WorkerFailed(BackendError):
    """The model process died or answered nonsense."""

    code = "worker_failed"


class WorkerTimeout(BackendError):
    """The model process did not start, or a stage made no progress, in time."""

    code = "timeout"


class BadRequest(BackendError):
    """A request that breaks the protocol's rules (a missing or mistyped field)."""

    code = "bad_request"


class ServerUnreachable(BackendError):
    """The model server cannot be reached (not running, wrong address, TLS refused)."""

    code = "server_unreachable"


class Unauthorized(BackendError):
    """The model server refused the access token."""

    code = "unauthorized"


class ServerBusy(BackendError):
    """The model server holds as many unfinished jobs as it takes."""

    code = "server_busy"


class Cancelled(BackendError):
    code = "cancelled"

    def __init__(self, message: str = "cancelled by the user"):
        super().__init__(message)


ERRORS_BY_CODE = {
    cls.code: cls
    for cls in (
        BackendError,
        InputImageError,
        CheckpointError,
        ModelNotFoundError,
        DeviceError,
        BackgroundRemovalError,
        EmptySurfaceError,
        OutOfMemoryError,
        PromptError,
        WrongModelError,
        AtlasFullError,
        WorkerFailed,
        WorkerTimeout,
        BadRequest,
        ServerUnreachable,
        Unauthorized,
        ServerBusy,
        Cancelled,
    )
}


def error_from(code: str, message: str) -> BackendError:
    """The BackendError subclass named by a wire error code (the base class if unknown)."""
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        error = BackendError(message)
        error.code = code  # keep the sender's code even without a class for it
        return error
    return cls(message)
