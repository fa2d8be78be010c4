"""The server's HTTP front on a loopback port with a stand-in for the model replicas,
and a plain HTTP request helper.

No Ray: api.create_app served by uvicorn in a thread, configured as the real server is
(guard.uvicorn_config), with FakePool in place of runner.ReplicaPool. Used by test_server_api.py (and its TLS case) and test_server_ray.py.
"""

import asyncio
import http.client
import socket
import threading
import time
import urllib.parse

import numpy as np

TOKEN = "test-token-0123456789abcdef"


class FakePool:
    """Stands in for runner.ReplicaPool: a job's image bytes choose what it does.

    b"fail" fails with bad_image, b"hang" runs until cancelled, b"long" reports its
    progress in words and a preview (PREVIEW), then runs until cancelled, anything else
    finishes with a small mesh after a few progress steps.
    """

    PREVIEW = np.arange(8 * 6 * 3, dtype=np.uint8).reshape(8, 6, 3)

    mesh = {
        "vertices": np.arange(12, dtype=np.float32).reshape(4, 3),
        "faces": np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int32),
        "colors": np.full((4, 4), 200, dtype=np.uint8),
        "prepared_image": np.zeros((8, 8, 3), dtype=np.uint8),
    }

    def __init__(self):
        self.started = 0
        self.images = []  # what each started job received
        self.prompts = []  # and its prompt (None for an image job)

    def start(self, job):
        self.started += 1
        self.images.append(job.image)
        self.prompts.append(job.prompt)
        job.task = asyncio.get_running_loop().create_task(self._run(job))

    async def _run(self, job):
        from backend.server.jobs import CANCELLED, DONE, FAILED, StoredResult

        job.attempts = 1
        job.mark_running("fake-replica")
        image = job.image if isinstance(job.image, bytes) else b"pixels" if job.image is not None else b"prompt"
        try:
            if image == b"fail":
                job.finish(FAILED, error=("bad_image", "the input image is not an image file this tool can read"))
                return
            if image == b"long":  # a long job: words, a preview, then it goes on until cancelled
                job.mark_progress("coarse", 0.5, "coarse 2/4, loss 0.25")
                job.mark_preview("coarse", 2, self.PREVIEW)
            for stage in ("prepare", "encode", "field"):
                if image != b"long":
                    job.mark_progress(stage, 0.0)
                await asyncio.sleep(0.01)
            while image in (b"hang", b"long"):
                await asyncio.sleep(0.01)
            fields = {"device": "cpu", "timings": {"field": 0.01}, "notes": ["a note"]}
            job.finish(DONE, result=StoredResult(dict(self.mesh), fields))
        except asyncio.CancelledError:
            job.finish(CANCELLED, error=("cancelled", "cancelled by the user"))

    def cancel(self, job):
        job.cancel_requested = True
        if job.task is not None:
            job.task.cancel()


class RunningFront:
    """create_app served by uvicorn on 127.0.0.1 (a free port), in a thread."""

    def __init__(self, tls=None, max_upload_bytes=1 << 20, max_active=4, limits=None, pool=None):
        """pool: FakePool by default (or, e.g., a runner.ReplicaPool on an in-process replica)."""
        import uvicorn

        from backend.server.api import create_app
        from backend.server.guard import Limits, uvicorn_config
        from backend.server.jobs import JobTable

        self.pool = pool or FakePool()
        self.table = JobTable(max_active, result_ttl=60, max_result_bytes=1 << 20)

        async def replica_status():
            return {"running": 1, "target": 1}

        self.limits = limits or Limits()
        app = create_app(table=self.table, pool=self.pool, token=TOKEN, version_info={"server": "test"},
                         replica_status=replica_status, max_upload_bytes=max_upload_bytes, limits=self.limits)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        cert, key = tls or (None, None)
        # the real server's configuration (backend/server/cli.py): the guard and its limits
        config = uvicorn_config(app, self.limits, log_level="warning", ssl_certfile=cert, ssl_keyfile=key)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the test front did not start"
            time.sleep(0.02)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.sock.getsockname()[1]}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def raw(url, method, path, body=None, headers=None) -> tuple[int, dict, bytes]:
    """One plain HTTP request: (status, headers, body), whatever the status."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()
