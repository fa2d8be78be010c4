"""Frames on the wire between Blender (the client) and the model process (the worker).

Standard library + numpy only: both sides import it. The messages that travel in these
frames are defined in protocol.py; both are documented in docs/protocol.md.

A frame is a 16-byte prefix, a UTF-8 JSON header and raw array bytes:

    magic b"I3D" + version byte | header length (uint32 LE) | payload length (uint64 LE)
    header: {"type": ..., <fields>, "buffers": [{"name", "dtype", "shape", "nbytes"}, ...]}
    payload: the buffers' bytes back to back, in header order, little-endian, C order

Nothing is evaluated or unpickled: headers are plain JSON, arrays are rebuilt with
numpy.frombuffer from an allowed dtype and a checked shape.
"""

import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np

VERSION = 1
MAGIC = b"I3D" + bytes([VERSION])
PREFIX = struct.Struct("<4sIQ")  # magic, header length, payload length

MAX_HEADER_BYTES = 1 << 20  # JSON only carries small fields; arrays go in the payload
MAX_PAYLOAD_BYTES = 1 << 31  # a 8192 x 8192 RGBA float32 image is 1 GiB
MAX_BUFFERS = 8
MAX_NDIM = 4
MAX_NAME = 64
READ_CHUNK_BYTES = 1 << 24  # arrays are read 16 MiB at a time

# dtype name on the wire -> little-endian numpy dtype; nothing else is accepted
DTYPES = {"uint8": np.dtype("<u1"), "int32": np.dtype("<i4"), "float32": np.dtype("<f4")}

class ProtocolError(Exception):
    """A frame that breaks the rules. `job_id` is set when the header named one."""

    def __init__(self, message: str, job_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.job_id = job_id


class StreamClosed(Exception):
    """The other side closed the stream, possibly in the middle of a frame."""


@dataclass
class Message:
    type: str
    fields: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)  # name -> numpy array

    def get(self, name, default=None):
        return self.fields.get(name, default)


# ---------------------------------------------------------------- writing


def _wire_array(name: str, array) -> tuple[dict, memoryview]:
    array = np.asarray(array)
    # any byte order is taken; arrays are sent little-endian
    wire_name = next((wire for wire, dtype in DTYPES.items() if array.dtype.newbyteorder("<") == dtype), None)
    if wire_name is None:
        raise ProtocolError(f"array {name!r} has dtype {array.dtype}; allowed: {', '.join(DTYPES)}")
    dtype = DTYPES[wire_name]
    if not 1 <= array.ndim <= MAX_NDIM:
        raise ProtocolError(f"array {name!r} must have 1 to {MAX_NDIM} dimensions, has {array.ndim}")
    array = np.ascontiguousarray(array, dtype=dtype)
    data = memoryview(array.reshape(-1).view(np.uint8))  # flat bytes; empty arrays too
    return {"name": name, "dtype": wire_name, "shape": list(array.shape), "nbytes": data.nbytes}, data


def encode(msg_type: str, fields: dict | None = None, arrays: dict | None = None) -> list:
    """The frame as a list of bytes-like parts (arrays are not copied into one buffer)."""
    fields = dict(fields or {})
    if "type" in fields or "buffers" in fields:
        raise ProtocolError("'type' and 'buffers' are reserved header names")
    described, parts = [], []
    for name, array in (arrays or {}).items():
        info, data = _wire_array(name, array)
        described.append(info)
        parts.append(data)
    header = {"type": msg_type, **fields}
    if described:
        header["buffers"] = described
    header_bytes = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
    payload_len = sum(part.nbytes for part in parts)
    if len(header_bytes) > MAX_HEADER_BYTES or payload_len > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"{msg_type} frame too large ({len(header_bytes)} header, {payload_len} payload bytes)")
    return [PREFIX.pack(MAGIC, len(header_bytes), payload_len) + header_bytes, *parts]


def write_message(stream, msg_type: str, fields: dict | None = None, arrays: dict | None = None):
    """Write one whole frame to a buffered binary stream and flush it."""
    for part in encode(msg_type, fields, arrays):
        stream.write(part)
    stream.flush()


# ---------------------------------------------------------------- reading


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed")


def _parse_header(data: bytes) -> dict:
    try:
        header = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"the frame header is not valid UTF-8 JSON ({exc.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError("the frame header must be a JSON object")
    job_id = header.get("job_id") if isinstance(header.get("job_id"), str) else None
    if not isinstance(header.get("type"), str):
        raise ProtocolError("the frame header has no 'type' string", job_id)
    return header


def _check_buffers(header: dict, payload_len: int, job_id) -> list[tuple[str, np.dtype, tuple, int]]:
    described = header.pop("buffers", [])
    if not isinstance(described, list) or len(described) > MAX_BUFFERS:
        raise ProtocolError(f"'buffers' must be a list of at most {MAX_BUFFERS} entries", job_id)
    checked, names, total = [], set(), 0
    for info in described:
        if not isinstance(info, dict) or set(info) != {"name", "dtype", "shape", "nbytes"}:
            raise ProtocolError("each buffer needs exactly name, dtype, shape and nbytes", job_id)
        name, dtype, shape, nbytes = info["name"], info["dtype"], info["shape"], info["nbytes"]
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or name in names:
            raise ProtocolError(f"bad or repeated buffer name {name!r}", job_id)
        if dtype not in DTYPES:
            raise ProtocolError(f"buffer {name!r}: dtype {dtype!r} not allowed ({', '.join(DTYPES)})", job_id)
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= MAX_NDIM
            or not all(type(n) is int and n >= 0 for n in shape)
        ):
            raise ProtocolError(f"buffer {name!r}: shape must be 1 to {MAX_NDIM} non-negative integers", job_id)
        if type(nbytes) is not int or nbytes != math.prod(shape) * DTYPES[dtype].itemsize:
            raise ProtocolError(f"buffer {name!r}: nbytes does not match dtype and shape", job_id)
        names.add(name)
        total += nbytes
        checked.append((name, DTYPES[dtype], tuple(shape), nbytes))
    if total != payload_len:
        raise ProtocolError(f"buffers describe {total} bytes but the payload has {payload_len}", job_id)
    return checked


class FrameReader:
    """Reads frames from a buffered binary stream (a pipe).

    A frame with a sound prefix but a bad header is consumed whole and reported as a
    ProtocolError; the next read continues with the next frame. A bad prefix means we
    lost track of frame boundaries: the error is reported, and the next read first skips
    ahead to the next magic bytes.
    """

    def __init__(self, stream):
        self._stream = stream
        self._lost_sync = False
        self._window = b""

    def _read_exact(self, count: int, what: str) -> bytes:
        data = self._stream.read(count)
        if data is None or len(data) < count:
            raise StreamClosed(f"the stream ended inside {what}")
        return data

    def _read_array(self, dtype, shape, nbytes: int, name: str) -> np.ndarray:
        # The buffer grows as bytes arrive, never ahead of them: a header that claims 2 GiB
        # and sends nothing costs nothing. The arrays are the caller's to keep (writable).
        buffer, filled = bytearray(), 0
        while filled < nbytes:
            if filled == len(buffer):
                buffer.extend(bytes(min(READ_CHUNK_BYTES, nbytes - filled)))
            with memoryview(buffer)[filled:] as free:  # released before the next extend
                count = self._stream.readinto(free)
            if not count:
                raise StreamClosed(f"the stream ended inside buffer {name!r}")
            filled += count
        return np.frombuffer(buffer, dtype=dtype).reshape(shape)

    def _skip_to_magic(self) -> bytes:
        window = self._window
        while window != MAGIC:
            byte = self._stream.read(1)
            if not byte:
                raise StreamClosed("the stream ended while looking for the next frame")
            window = (window + byte)[-len(MAGIC):]
        self._lost_sync = False
        return window

    def read(self) -> Message | None:
        """The next message; None at a clean end of stream (between frames)."""
        if self._lost_sync:
            magic = self._skip_to_magic()
        else:
            magic = self._stream.read(len(MAGIC))
            if not magic:
                return None
            if len(magic) < len(MAGIC):
                raise StreamClosed("the stream ended inside a frame prefix")
        if magic != MAGIC:
            # keep the tail: the next frame's magic may start inside these bytes
            self._lost_sync, self._window = True, magic[1:]
            raise ProtocolError(f"not a frame (bad magic bytes {magic!r}); skipping to the next frame")
        rest = self._read_exact(PREFIX.size - len(MAGIC), "a frame prefix")
        _, header_len, payload_len = PREFIX.unpack(magic + rest)
        if not 0 < header_len <= MAX_HEADER_BYTES or payload_len > MAX_PAYLOAD_BYTES:
            self._lost_sync, self._window = True, b""
            raise ProtocolError(f"frame sizes out of range (header {header_len}, payload {payload_len} bytes)")
        header_data = self._read_exact(header_len, "a frame header")
        try:
            header = _parse_header(header_data)
            job_id = header.get("job_id") if isinstance(header.get("job_id"), str) else None
            buffers = _check_buffers(header, payload_len, job_id)
        except ProtocolError:
            self._skip_payload(payload_len)
            raise
        arrays = {name: self._read_array(*spec, name) for name, *spec in buffers}
        msg_type = header.pop("type")
        return Message(msg_type, header, arrays)

    def _skip_payload(self, count: int):
        while count > 0:
            data = self._stream.read(min(count, 1 << 20))
            if not data:
                raise StreamClosed("the stream ended inside a frame payload")
            count -= len(data)
