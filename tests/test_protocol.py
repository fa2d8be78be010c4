"""backend.bridge.wire: frames round-trip, and every malformed frame is refused without losing the stream."""

import io
import json
import os
import threading
import time

import numpy as np
import pytest

from backend.bridge import wire
from backend.bridge.wire import MAGIC, PREFIX, FrameReader, ProtocolError, StreamClosed


def stream_of(*parts: bytes) -> FrameReader:
    return FrameReader(io.BufferedReader(io.BytesIO(b"".join(parts))))


def frame(msg_type="ping", fields=None, arrays=None) -> bytes:
    return b"".join(bytes(part) for part in wire.encode(msg_type, fields, arrays))


def raw_frame(header: dict | bytes, payload: bytes = b"") -> bytes:
    """A frame with a sound prefix around any header, to test the header checks."""
    data = header if isinstance(header, bytes) else json.dumps(header).encode()
    return PREFIX.pack(MAGIC, len(data), len(payload)) + data + payload


def test_fields_and_arrays_round_trip():
    arrays = {
        "vertices": np.random.default_rng(0).random((5, 3), dtype=np.float32),
        "faces": np.arange(12, dtype=np.int32).reshape(4, 3),
        "colors": np.full((5, 4), 200, np.uint8),
        "image": np.zeros((2, 3, 4, 1), np.uint8),
    }
    fields = {"job_id": "a1", "timings": {"field": 1.5}, "reused": False, "note": "ü"}
    msg = stream_of(frame("result", fields, arrays)).read()
    assert msg.type == "result" and msg.fields == fields
    assert list(msg.arrays) == list(arrays)
    for name, array in arrays.items():
        assert msg.arrays[name].dtype == array.dtype and np.array_equal(msg.arrays[name], array)
    msg.arrays["vertices"][0, 0] = 7.0  # the receiver owns writable arrays


def test_arrays_travel_as_raw_bytes_not_json_numbers():
    vertices = np.zeros((100_000, 3), np.float32)
    first, payload = wire.encode("result", {"job_id": "x"}, {"vertices": vertices})
    assert len(first) < 300  # prefix + a small header; no number lists
    assert payload.nbytes == vertices.nbytes


def test_non_contiguous_and_big_endian_arrays_are_sent_correctly():
    base = np.arange(24, dtype=">i4").reshape(4, 6)
    msg = stream_of(frame("x", arrays={"a": base[:, ::2]})).read()
    assert msg.arrays["a"].dtype == np.dtype("<i4")
    assert np.array_equal(msg.arrays["a"], base[:, ::2])


@pytest.mark.parametrize("array", [np.zeros(3, np.float64), np.zeros(3, object), np.zeros((), np.uint8)])
def test_disallowed_arrays_are_refused_when_sending(array):
    with pytest.raises(ProtocolError):
        wire.encode("x", arrays={"a": array})


def test_reserved_names_are_refused_when_sending():
    with pytest.raises(ProtocolError):
        wire.encode("x", {"buffers": []})


def buffer(name="a", dtype="uint8", shape=(4,), nbytes=4):
    return {"name": name, "dtype": dtype, "shape": list(shape), "nbytes": nbytes}


BAD_HEADERS = {
    "not json": b"{nope",
    "not utf-8": b"\xff\xfe{}",
    "not an object": b"[1, 2]",
    "no type": {"job_id": "j1"},
    "nan": b'{"type": "x", "job_id": "j1", "v": NaN}',
    "deep nesting": b'{"type": "x", "v": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "pickle dtype": {"type": "x", "job_id": "j1", "buffers": [buffer(dtype="object")]},
    "float64": {"type": "x", "job_id": "j1", "buffers": [buffer(dtype="float64", nbytes=32)]},
    "nbytes lies": {"type": "x", "job_id": "j1", "buffers": [buffer(nbytes=3)]},
    "negative shape": {"type": "x", "job_id": "j1", "buffers": [buffer(shape=(-4,))]},
    "float shape": {"type": "x", "job_id": "j1", "buffers": [buffer(shape=(4.0,))]},
    "too many dims": {"type": "x", "job_id": "j1", "buffers": [buffer(shape=(1, 1, 1, 1, 4))]},
    "extra key": {"type": "x", "job_id": "j1", "buffers": [{**buffer(), "offset": 0}]},
    "repeated name": {"type": "x", "job_id": "j1", "buffers": [buffer(), buffer()]},
    "payload mismatch": {"type": "x", "job_id": "j1", "buffers": [buffer(shape=(2,), nbytes=2)]},
}


@pytest.mark.parametrize("case", BAD_HEADERS)
def test_bad_header_is_refused_and_the_next_frame_still_reads(case):
    reader = stream_of(raw_frame(BAD_HEADERS[case], b"\x00" * 4), frame("ping", {"id": "after"}))
    with pytest.raises(ProtocolError) as error:
        reader.read()
    if isinstance(BAD_HEADERS[case], dict):
        assert error.value.job_id == "j1"  # so the worker can fail that job only
    assert reader.read().fields == {"id": "after"}
    assert reader.read() is None


@pytest.mark.parametrize("garbage", [b"x", b"hello, I am not a frame", b"I3", MAGIC[:3] + b"\x00" * 40, b"\n" * 5000])
def test_garbage_between_frames_is_skipped_once(garbage):
    reader = stream_of(frame("ping", {"id": "1"}), garbage, frame("ping", {"id": "2"}))
    assert reader.read().fields == {"id": "1"}
    with pytest.raises(ProtocolError, match="not a frame"):
        reader.read()
    assert reader.read().fields == {"id": "2"}
    assert reader.read() is None


def test_out_of_range_sizes_are_refused_without_reading_them():
    huge = PREFIX.pack(MAGIC, wire.MAX_HEADER_BYTES + 1, 0)
    reader = stream_of(huge, frame("ping", {"id": "2"}))
    with pytest.raises(ProtocolError, match="out of range"):
        reader.read()
    assert reader.read().fields == {"id": "2"}
    oversized = PREFIX.pack(MAGIC, 10, wire.MAX_PAYLOAD_BYTES + 1)
    with pytest.raises(ProtocolError, match="out of range"):
        stream_of(oversized).read()


def test_end_of_stream_between_frames_is_clean_and_inside_a_frame_is_not():
    assert stream_of(b"").read() is None
    whole = frame("result", {"job_id": "x"}, {"a": np.zeros(1000, np.uint8)})
    for cut in (2, PREFIX.size + 3, len(whole) - 10):
        with pytest.raises(StreamClosed):
            stream_of(whole[:cut]).read()


def test_a_million_vertex_mesh_crosses_a_pipe_quickly():
    n = 1_000_000
    arrays = {
        "vertices": np.random.default_rng(1).random((n, 3), dtype=np.float32),
        "faces": np.random.default_rng(2).integers(0, n, (2 * n, 3), dtype=np.int32),
        "colors": np.zeros((n, 4), np.uint8),
    }
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as pipe_in, os.fdopen(write_fd, "wb") as pipe_out:
        started = time.perf_counter()
        writer = threading.Thread(target=wire.write_message, args=(pipe_out, "result", {"job_id": "m"}, arrays))
        writer.start()
        msg = FrameReader(pipe_in).read()
        writer.join()
        seconds = time.perf_counter() - started
    assert np.array_equal(msg.arrays["faces"], arrays["faces"])
    assert np.array_equal(msg.arrays["vertices"], arrays["vertices"])
    # ~0.06 s measured on 2 shared cores; the bound only catches a regression to JSON lists
    assert seconds < 3.0
