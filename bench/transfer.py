"""Time a result's trip through the worker protocol: encode, OS pipe, decode."""

import os
import threading
import time

from backend import protocol


def round_trip(result) -> float:
    """Seconds to send the mesh arrays as the worker's result frame and read them back."""
    read_fd, write_fd = os.pipe()
    arrays = {"vertices": result.vertices, "faces": result.faces, "colors": result.colors,
              "prepared_image": result.prepared_image}
    with os.fdopen(read_fd, "rb") as reader_stream, os.fdopen(write_fd, "wb") as writer_stream:
        started = time.perf_counter()
        writer = threading.Thread(target=protocol.write_message, args=(writer_stream, "result", {"job_id": "bench"}, arrays))
        writer.start()
        message = protocol.FrameReader(reader_stream).read()
        writer.join()
        seconds = time.perf_counter() - started
    assert message.arrays["vertices"].shape == result.vertices.shape
    return seconds
