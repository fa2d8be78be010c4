"""The server's ReplicaPool: its handling of replica events and failures, against a scripted stand-in handle.

Needs ray importable (for its exception classes) but starts no Ray.
"""

import asyncio

import numpy as np
import pytest

ray_exceptions = pytest.importorskip("ray.exceptions")
from ray.serve.exceptions import BackPressureError, RequestCancelledError  # noqa: E402

from backend.server.jobs import CANCELLED, DONE, FAILED, JobTable  # noqa: E402
from backend.server.runner import ReplicaPool  # noqa: E402

ARRAYS = {"vertices": np.zeros((3, 3), np.float32), "faces": np.zeros((1, 3), np.int32),
          "colors": np.zeros((3, 4), np.uint8), "prepared_image": np.zeros((2, 2, 3), np.uint8)}
RESULT = {"event": "result", "device": "cpu", "timings": {"field": 0.1}, "arrays": ARRAYS}


class ScriptedStream:
    """Yields its script's events; an exception in the script is raised at that point;
    "hang" waits until cancel() (then raises RequestCancelledError, as Serve does)."""

    def __init__(self, script):
        self.script = list(script)
        self.cancelled = asyncio.Event()

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self.script:
            raise StopAsyncIteration
        item = self.script.pop(0)
        if item == "hang":
            await self.cancelled.wait()
            raise RequestCancelledError("req")
        if isinstance(item, BaseException):
            raise item
        await asyncio.sleep(0)
        return item

    def cancel(self):
        self.cancelled.set()


class ScriptedHandle:
    def __init__(self, *scripts):
        self.scripts, self.streams, self.calls = list(scripts), [], 0

    def options(self, stream=False):
        assert stream
        return self

    @property
    def generate(self):
        return self

    def remote(self, job_id, settings, image):
        self.calls += 1
        stream = ScriptedStream(self.scripts.pop(0))
        self.streams.append(stream)
        return stream


def run(handle, retries=1, idle_timeout=5.0, action=None):
    async def scenario():
        table = JobTable(4, 60, 1 << 30)
        job = table.create({"resolution": 32}, b"img")
        pool = ReplicaPool(handle, retries=retries, idle_timeout=idle_timeout)
        pool.start(job)
        if action:
            await action(pool, job)
        await asyncio.wait_for(job.task, 10)
        return job

    return asyncio.run(scenario())


STARTED = {"event": "started", "replica": "r1", "device": "cpu"}
PROGRESS = {"event": "progress", "stage": "field", "fraction": 0.5}


def test_events_become_job_states():
    job = run(ScriptedHandle([STARTED, PROGRESS, RESULT]))
    assert job.state == DONE and job.replica == "r1" and job.attempts == 1
    assert job.result.fields == {"device": "cpu", "timings": {"field": 0.1}, "notes": []}


def test_a_job_error_is_passed_on_as_code_and_sentence():
    job = run(ScriptedHandle([STARTED, {"event": "error", "code": "empty_surface", "message": "no surface"}]))
    assert (job.state, job.error) == (FAILED, ("empty_surface", "no surface"))


def test_a_dead_replica_is_retried_once_then_reported():
    handle = ScriptedHandle([STARTED, PROGRESS, ray_exceptions.ActorDiedError()], [STARTED, RESULT])
    job = run(handle)
    assert job.state == DONE and job.attempts == 2 and handle.calls == 2

    handle = ScriptedHandle([STARTED, ray_exceptions.ActorDiedError()], [STARTED, ray_exceptions.ActorDiedError()])
    job = run(handle)
    assert job.state == FAILED and job.error[0] == "worker_failed" and "twice" in job.error[1]

    job = run(ScriptedHandle([STARTED, ray_exceptions.ActorDiedError()]), retries=0)
    assert job.error[0] == "worker_failed" and "try again" in job.error[1]


def test_cancel_reaches_the_stream_and_ends_the_job_cancelled():
    async def cancel_when_running(pool, job):
        while job.state != "running":
            await asyncio.sleep(0.01)
        pool.cancel(job)

    handle = ScriptedHandle([STARTED, "hang"])
    job = run(handle, action=cancel_when_running)
    assert job.state == CANCELLED and handle.streams[0].cancelled.is_set()


def test_a_cancelled_job_whose_replica_dies_is_not_retried():
    async def cancel_at_once(pool, job):
        job.cancel_requested = True  # before the runner's first step: the dying stream ignores cancel()

    handle = ScriptedHandle([STARTED, PROGRESS, ray_exceptions.ActorDiedError()], [STARTED, RESULT])
    job = run(handle, action=cancel_at_once)
    assert job.state == CANCELLED and handle.calls == 1


def test_no_progress_times_out_and_cancels():
    handle = ScriptedHandle([STARTED, "hang"])
    job = run(handle, idle_timeout=0.2)
    assert job.state == FAILED and job.error[0] == "timeout" and "in stage" not in job.error[1]
    assert handle.streams[0].cancelled.is_set()


def test_back_pressure_is_a_busy_server():
    job = run(ScriptedHandle([BackPressureError(num_queued_requests=1, max_queued_requests=1)]))
    assert job.error[0] == "server_busy"


def test_an_unexpected_failure_is_an_internal_error_without_traceback():
    job = run(ScriptedHandle([STARTED, ValueError("boom")]))
    assert job.state == FAILED and job.error == ("backend_error", "internal error in the model server: ValueError")
