"""Time a result's trip through the worker protocol: encode, OS pipe, decode."""

import os
import threading
import time

from backend.bridge import protocol, wire


def round_trip(result) -> float:
    """Seconds to send the mesh arrays as the worker's result event and read them back."""
    read_fd, write_fd = os.pipe()
    event = protocol.Result(job_id="bench", device="cpu", timings={}, vertices=result.vertices, faces=result.faces,
                            colors=result.colors, prepared_image=result.prepared_image)
    with os.fdopen(read_fd, "rb") as reader_stream, os.fdopen(write_fd, "wb") as writer_stream:
        started = time.perf_counter()
        writer = threading.Thread(target=protocol.send, args=(writer_stream, event))
        writer.start()
        received = protocol.parse(wire.FrameReader(reader_stream).read(), protocol.EVENTS)
        writer.join()
        seconds = time.perf_counter() - started
    assert received.vertices.shape == result.vertices.shape
    return seconds
