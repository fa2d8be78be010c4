"""What the worker tests share (test_worker.py, test_worker_faults.py): clients, event
waits, frame-level access to a worker, and their fixtures."""

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from backend.bridge import wire
from backend.bridge.client import WorkerClient
from backend.bridge.settings import GenerateSettings
from backend.bridge.worker_process import EXTENSION_ROOT

SMALL = GenerateSettings(resolution=32)
# big enough that the field stage of the tiny model takes a few seconds, with progress
SLOW = GenerateSettings(resolution=256)


def make_client(model_dir, log_dir, **env) -> WorkerClient:
    return WorkerClient(sys.executable, str(model_dir), "cpu", log_dir=str(log_dir), env=env)


def events_until(client, job_id, kinds, timeout=60.0) -> list:
    """Poll until an event of one of `kinds` arrives for job_id; returns the job's events."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in client.poll():
            if event.job_id == job_id:
                seen.append(event)
                if event.kind in kinds:
                    return seen
        time.sleep(0.01)
    raise AssertionError(f"no {kinds} event for {job_id} in {timeout} s; saw {[(e.kind, e.stage) for e in seen]}")


def cancel_during(client, job_id, stage: str, steps: int = 3) -> tuple:
    """Cancel a job once `steps` progress events of `stage` have arrived, and wait for its
    end: (the kinds of its closing events, seconds from cancel to end, seconds per step)."""
    seen, deadline = [], time.monotonic() + 300
    while len(seen) < steps and time.monotonic() < deadline:
        seen += [time.monotonic() for event in client.poll() if event.job_id == job_id and event.kind == "progress"
                 and event.stage == stage]
        time.sleep(0.01)
    step_seconds = (seen[-1] - seen[1]) / max(1, len(seen) - 2)
    asked = time.monotonic()
    client.cancel(job_id)
    ended = []
    while not ended and time.monotonic() - asked < 120:
        ended = [event.kind for event in client.poll() if event.job_id == job_id and event.kind != "progress"]
        time.sleep(0.01)
    return ended, time.monotonic() - asked, step_seconds


def process_gone(pid: int, within: float = 10.0) -> bool:
    """True once pid has exited (gone, or a zombie of a parent that is not us)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def assert_same_mesh(result, expected):
    np.testing.assert_array_equal(result.vertices, expected.vertices)
    np.testing.assert_array_equal(result.faces, expected.faces)
    np.testing.assert_array_equal(result.colors, expected.colors)
    np.testing.assert_array_equal(result.prepared_image, expected.prepared_image)


@pytest.fixture(scope="module", name="client")
def shared_client(tiny_model_dir, tmp_path_factory):
    """One worker shared by the tests that leave it usable."""
    with make_client(tiny_model_dir, tmp_path_factory.mktemp("logs")) as shared:
        yield shared


class RawWorker:
    """`python -m backend.worker` driven frame by frame, as a misbehaving client would."""

    def __init__(self, log_dir, parent_pid=0):
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "backend.worker", "--log-dir", str(log_dir), "--parent-pid", str(parent_pid)],
            cwd=EXTENSION_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self.frames = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        reader = wire.FrameReader(self.popen.stdout)
        try:
            while (msg := reader.read()) is not None:
                self.frames.put(msg)
        except (wire.StreamClosed, OSError, ValueError):
            pass  # killed mid-frame by close()

    def send_raw(self, data: bytes):
        self.popen.stdin.write(data)
        self.popen.stdin.flush()

    def send(self, msg_type, fields=None, arrays=None):
        wire.write_message(self.popen.stdin, msg_type, fields, arrays)

    def next(self, msg_type=None, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            msg = self.frames.get(timeout=max(0.0, deadline - time.monotonic()))
            if msg_type is None or msg.type == msg_type:
                return msg

    def close(self):
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        self.popen.stdin.close()
        self.popen.stdout.close()


@pytest.fixture(name="raw_worker")
def frame_level_worker(tmp_path):
    worker = RawWorker(tmp_path)
    assert worker.next("ready").get("pid") == worker.popen.pid
    yield worker
    worker.close()
