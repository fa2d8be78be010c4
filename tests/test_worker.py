"""The model process and its client, with real worker processes and the tiny checkpoint.

Each worker start imports torch (~2-3 s on 2 cores), so tests share workers where the
behaviour under test allows it.
"""

import io
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.bridge import wire
from backend.bridge.client import WorkerClient
from backend.bridge.errors import BackendError, InputImageError, WorkerFailed, WorkerTimeout
from backend.bridge.settings import GenerateSettings
from backend.bridge.worker_process import EXTENSION_ROOT
from backend.worker.server import NOISE_ENV

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


@pytest.fixture(scope="module")
def in_process(tiny_model_dir, flamingo_path):
    """What backend.pipeline computes in this process for the flamingo, per resolution."""
    from backend.pipeline import generate_mesh, load_model

    loaded = load_model(tiny_model_dir, "cpu")
    return {r: generate_mesh(loaded, flamingo_path, GenerateSettings(resolution=r)) for r in (32, 64)}


@pytest.fixture(scope="module")
def client(tiny_model_dir, tmp_path_factory):
    """One worker shared by the tests that leave it usable."""
    with make_client(tiny_model_dir, tmp_path_factory.mktemp("logs")) as shared:
        yield shared


# ---------------------------------------------------------------- jobs


def test_job_through_the_worker_equals_the_in_process_pipeline(tiny_model_dir, tmp_path, flamingo_path, in_process):
    with make_client(tiny_model_dir, tmp_path) as fresh:
        events = []
        result = fresh.run(GenerateSettings(resolution=64), image_path=flamingo_path, on_event=events.append)
    assert_same_mesh(result, in_process[64])
    assert result.vertices.dtype == np.float32 and result.faces.dtype == np.int32 and result.colors.dtype == np.uint8
    assert result.device == "cpu"
    kinds = [e.kind for e in events]
    assert kinds[0] == "accepted" and kinds[-1] == "result"
    stages = [e.stage for e in events if e.kind == "progress"]
    assert list(dict.fromkeys(stages)) == ["prepare", "encode", "field", "surface", "colors"]
    assert set(result.timings) >= {"load", "prepare", "encode", "field", "surface", "colors"}
    assert (tmp_path / "worker.log").is_file()


def test_second_job_reuses_the_loaded_model(tiny_model_dir, tmp_path, flamingo_path, in_process):
    copy = tmp_path / "copy_of_tiny"
    shutil.copytree(tiny_model_dir, copy)
    with make_client(tiny_model_dir, tmp_path / "logs") as fresh:
        logs = {}
        for name, options in [("first", {}), ("second", {}), ("auto device", {"device": "auto"}), ("other folder", {"model": copy})]:
            events = []
            result = fresh.run(SMALL, image_path=flamingo_path, on_event=events.append, **options)
            assert_same_mesh(result, in_process[32])
            logs[name] = (" ".join(e.message for e in events if e.kind == "log"), result.timings)
        pid = fresh.pid
    assert "loaded model" in logs["first"][0] and "load" in logs["first"][1]
    for warm in ("second", "auto device"):  # "auto" is the CPU here: the same model
        assert "reusing the loaded model" in logs[warm][0] and "load" not in logs[warm][1]
    assert "loaded model" in logs["other folder"][0] and "load" in logs["other folder"][1]
    assert process_gone(pid)


def test_image_bytes_and_pixels_give_the_same_mesh_as_the_path(client, flamingo_path, in_process):
    pixels = np.asarray(Image.open(flamingo_path).convert("RGBA"))
    for source in (
        {"image_bytes": flamingo_path.read_bytes()},
        {"image_pixels": pixels},
        {"image_pixels": pixels.astype(np.float32) / 255.0},
    ):
        assert_same_mesh(client.run(SMALL, **source), in_process[32])


def test_jobs_run_in_order_one_at_a_time(client, flamingo_path):
    ids = [client.submit(SMALL, image_path=flamingo_path) for _ in range(3)]
    order = []
    deadline = time.monotonic() + 60
    while len([k for k, _ in order if k == "result"]) < 3 and time.monotonic() < deadline:
        order += [(e.kind, e.job_id) for e in client.poll() if e.kind in ("accepted", "result")]
        time.sleep(0.01)
    assert order == [(kind, job) for job in ids for kind in ("accepted", "result")]


def test_bad_inputs_fail_only_their_job(client, flamingo_path, tmp_path):
    pid = client.pid
    truncated = flamingo_path.read_bytes()[: flamingo_path.stat().st_size // 2]
    with pytest.raises(InputImageError, match="truncated|decoded"):
        client.run(SMALL, image_bytes=truncated)
    with pytest.raises(InputImageError, match="no such file"):
        client.run(SMALL, image_path=tmp_path / "missing.png")
    with pytest.raises(InputImageError, match="not a regular file|no such file"):
        client.run(SMALL, image_path=tmp_path)  # a folder is not an image file
    with pytest.raises(InputImageError):
        client.run(SMALL, image_bytes=b"definitely not an image")
    assert client.run(SMALL, image_path=flamingo_path).vertices.shape[0] > 1000
    assert client.pid == pid and client.ping()


def test_printing_libraries_cannot_break_the_protocol(tiny_model_dir, tmp_path, flamingo_path, in_process):
    # the worker prints junk (frame magic included) to fd 1 and 2 at every progress step
    with make_client(tiny_model_dir, tmp_path, **{NOISE_ENV: "1"}) as noisy:
        assert_same_mesh(noisy.run(SMALL, image_path=flamingo_path), in_process[32])
        assert noisy.ping()
    log_text = (tmp_path / "worker.log").read_text()
    assert "raw noise on fd 1" in log_text and "raw noise on fd 2" in log_text
    assert "test noise on stdout" in log_text and "test noise on stderr" in log_text


# ---------------------------------------------------------------- cancel and faults


def test_cancel_during_the_field_stage_leaves_the_worker_usable(client, flamingo_path):
    client.run(SMALL, image_path=flamingo_path)  # warm: the field stage starts at once
    pid = client.pid
    job = client.submit(SLOW, image_path=flamingo_path)
    seen = []
    while not any(e.kind == "progress" and e.stage == "field" for e in seen):
        seen += events_until(client, job, {"progress"}, timeout=30)
    client.cancel(job)
    cancelled_at = time.monotonic()
    final = events_until(client, job, {"cancelled", "result", "error"}, timeout=10)[-1]
    assert final.kind == "cancelled"
    assert time.monotonic() - cancelled_at < 3.0  # lands between field chunks, not after the job
    assert client.run(SMALL, image_path=flamingo_path).vertices.shape[0] > 1000
    assert client.pid == pid  # the same worker, not a restart


def test_cancel_of_a_queued_job_never_runs_it(client, flamingo_path):
    first = client.submit(SMALL, image_path=flamingo_path)
    second = client.submit(SMALL, image_path=flamingo_path)
    client.cancel(second)
    assert events_until(client, second, {"cancelled", "accepted"})[-1].kind == "cancelled"
    assert events_until(client, first, {"result", "error"})[-1].kind == "result"


def test_kill_9_mid_job_fails_that_job_and_the_next_gets_a_new_worker(tiny_model_dir, tmp_path, flamingo_path):
    with make_client(tiny_model_dir, tmp_path) as fresh:
        job = fresh.submit(SLOW, image_path=flamingo_path)
        events_until(fresh, job, {"progress"})
        pid = fresh.pid
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        final = events_until(fresh, job, {"error", "result"}, timeout=10)[-1]
        assert time.monotonic() - killed_at < 2.0  # noticed at once, not by a timeout
        assert final.kind == "error" and final.code == WorkerFailed.code
        assert "the model process exited (signal SIGKILL)" in final.message
        assert "last log lines" in final.message and f"pid {pid}" in final.message
        assert process_gone(pid, within=1.0)  # reaped by the client, no zombie
        assert fresh.run(SMALL, image_path=flamingo_path).vertices.shape[0] > 1000
        assert fresh.pid != pid


@pytest.mark.timeout(90)  # a regression here hangs rather than fails
def test_a_stalled_stage_times_out_and_an_unanswered_cancel_restarts(tiny_model_dir, tmp_path, flamingo_path):
    with make_client(tiny_model_dir, tmp_path) as fresh:
        fresh.stage_timeout, fresh.cancel_grace = 1.0, 0.5
        job = fresh.submit(SLOW, image_path=flamingo_path)
        events_until(fresh, job, {"progress"})
        stalled = fresh.pid
        os.kill(stalled, signal.SIGSTOP)  # a worker stuck in a stage
        final = events_until(fresh, job, {"error", "result"}, timeout=10)[-1]
        assert final.code == WorkerTimeout.code and "made no progress for 1 s in stage" in final.message
        assert process_gone(stalled, within=2.0)

        fresh.stage_timeout = 60.0
        job = fresh.submit(SLOW, image_path=flamingo_path)
        events_until(fresh, job, {"progress"})
        stuck = fresh.pid
        os.kill(stuck, signal.SIGSTOP)
        fresh.cancel(job)
        final = events_until(fresh, job, {"cancelled", "error", "result"}, timeout=10)[-1]
        assert final.kind == "cancelled" and "restarted" in final.message
        assert process_gone(stuck, within=2.0)
        assert fresh.run(SMALL, image_path=flamingo_path).vertices.shape[0] > 1000

        # a hung worker cannot block the client, even with more input than its pipe holds
        fresh.stage_timeout = 1.0
        hung = fresh.pid
        os.kill(hung, signal.SIGSTOP)
        big = np.zeros((2048, 2048, 4), np.uint8)
        job = fresh.submit(SMALL, image_pixels=big)
        final = events_until(fresh, job, {"error", "result"}, timeout=10)[-1]
        assert final.code == WorkerTimeout.code
        assert process_gone(hung, within=2.0)


def test_start_up_timeout_is_reported(tiny_model_dir, tmp_path, flamingo_path):
    with make_client(tiny_model_dir, tmp_path) as slow_start:
        slow_start.start_timeout = 0.2  # less than importing torch takes
        with pytest.raises(WorkerTimeout, match="did not start within"):
            slow_start.run(SMALL, image_path=flamingo_path)


def test_a_missing_interpreter_is_reported(tiny_model_dir, tmp_path, flamingo_path):
    with WorkerClient(str(tmp_path / "no-python"), str(tiny_model_dir), log_dir=str(tmp_path)) as broken:
        with pytest.raises(WorkerFailed, match="could not start the model process"):
            broken.run(SMALL, image_path=flamingo_path, timeout=30)
        assert not broken.ping()


def test_a_backend_python_without_torch_is_reported_clearly(tiny_model_dir, tmp_path, flamingo_path):
    blocker = tmp_path / "no_torch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
    with make_client(tiny_model_dir, tmp_path, PYTHONPATH=str(blocker)) as broken:
        with pytest.raises(BackendError) as error:
            broken.run(SMALL, image_path=flamingo_path, timeout=60)
    assert "cannot import torch" in str(error.value) and "Install backend" in str(error.value)


# ---------------------------------------------------------------- process lifetime


def test_close_shuts_the_worker_down(tiny_model_dir, tmp_path, flamingo_path):
    fresh = make_client(tiny_model_dir, tmp_path)
    assert not fresh.ping()  # not started
    fresh.start()
    assert fresh.ping(timeout=60)  # answers once it is up, however soon we ask
    fresh.run(SMALL, image_path=flamingo_path)
    pid = fresh.pid
    fresh.close()
    assert not fresh.is_running and process_gone(pid, within=1.0)
    assert "shut down on request" in (tmp_path / "worker.log").read_text()


BLENDER_STAND_IN = """
import sys, time
from backend.bridge.client import WorkerClient
client = WorkerClient(sys.executable, sys.argv[1], "cpu", log_dir=sys.argv[2])
client.start()
while not client.ping(timeout=1):
    time.sleep(0.1)
print(client.pid, flush=True)
time.sleep(600)
"""


def test_worker_exits_when_its_parent_dies(tiny_model_dir, tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", BLENDER_STAND_IN, str(tiny_model_dir), str(tmp_path)],
        cwd=EXTENSION_ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        worker_pid = int(parent.stdout.readline())
        assert not process_gone(worker_pid, within=0.5)
    finally:
        parent.kill()  # SIGKILL: no atexit, no close()
        parent.wait()
        parent.stdout.close()
    assert process_gone(worker_pid, within=10.0)


# ---------------------------------------------------------------- the worker at the frame level


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


@pytest.fixture
def raw_worker(tmp_path):
    worker = RawWorker(tmp_path)
    assert worker.next("ready").get("pid") == worker.popen.pid
    yield worker
    worker.close()


def test_garbage_and_bad_requests_get_errors_and_the_worker_keeps_serving(raw_worker, tiny_model_dir, flamingo_path, tmp_path):
    job = {"settings": SMALL.to_dict(), "model": str(tiny_model_dir), "device": "cpu"}
    bad = [
        (lambda: raw_worker.send_raw(b"GET / HTTP/1.1\r\n\r\n"), None, "bad_request", "not a frame"),
        (lambda: raw_worker.send_raw(wire.PREFIX.pack(wire.MAGIC, 5, 0) + b"{oops"), None, "bad_request", "JSON"),
        (lambda: raw_worker.send("explode", {"job_id": "j1"}), "j1", "bad_request", "unknown request"),
        (lambda: raw_worker.send("generate", {**job}), None, "bad_request", "job_id"),
        (lambda: raw_worker.send("generate", {**job, "job_id": "j2"}), "j2", "bad_request", "exactly one"),
        (lambda: raw_worker.send("generate", {**job, "job_id": "j3", "settings": {"resolution": 3}}), "j3", "bad_request", "resolution"),
        (lambda: raw_worker.send("generate", {**job, "job_id": "j4", "settings": {"evil": "__import__('os')"}}), "j4", "bad_request", "unknown settings"),
        (lambda: raw_worker.send("generate", {**job, "job_id": "j5", "image_path": str(tmp_path)}), "j5", "bad_image", "not a regular file"),
        (lambda: raw_worker.send("generate", {**job, "job_id": "j6"}, {"image_bytes": np.zeros((2, 2), np.uint8)}), "j6", "bad_request", "1-D"),
        (lambda: raw_worker.send("generate", {**job, "job_id": "j7", "image_path": str(flamingo_path), "model": str(tmp_path / "nope")}), "j7", "model_not_found", ""),
        (lambda: raw_worker.send("generate", {**job, "job_id": "j8", "image_path": str(flamingo_path), "device": "toaster"}), "j8", "bad_device", "toaster"),
    ]
    for send, job_id, code, words in bad:
        send()
        error = raw_worker.next("error")
        assert (error.get("job_id"), error.get("code")) == (job_id, code), error
        assert words in error.get("message")
        raw_worker.send("ping", {"id": "alive"})
        assert raw_worker.next("pong").get("id") == "alive"

    raw_worker.send("generate", {**job, "job_id": "good", "image_path": str(flamingo_path)})
    result = raw_worker.next("result")
    assert result.get("job_id") == "good" and result.arrays["faces"].dtype == np.int32
    raw_worker.send("shutdown")
    assert raw_worker.next("bye")
    assert raw_worker.popen.wait(10) == 0


def test_worker_exits_when_its_input_closes(raw_worker):
    raw_worker.popen.stdin.close()
    assert raw_worker.popen.wait(10) == 0


def test_worker_watches_its_parent_pid_even_with_its_input_open(tmp_path):
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    worker = RawWorker(tmp_path, parent_pid=stand_in.pid)
    try:
        worker.next("ready")
        stand_in.kill()
        stand_in.wait()
        assert worker.popen.wait(10) == 0  # our pipe to it is still open
        assert "is gone: exiting" in (tmp_path / "worker.log").read_text()
    finally:
        worker.close()


# ---------------------------------------------------------------- CUDA out of memory (no GPU here)


class GpuThatRunsOut:
    """Stands in for the pipeline on a GPU (none here): raises CUDA OOM `failures` times."""

    def __init__(self, failures):
        self.failures, self.chunk_sizes = failures, []

    def generate_mesh(self, loaded, image, settings, progress, should_cancel, chunk_size, encode=None, prompt=None,
                      detail=None, preview=None):
        import torch

        self.chunk_sizes.append(chunk_size)
        if len(self.chunk_sizes) <= self.failures:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "mesh"


def oom_job(failures, monkeypatch):
    import io
    from types import SimpleNamespace

    from backend import pipeline
    from backend.worker.server import WorkerServer

    out = io.BytesIO()
    server = WorkerServer(io.BufferedReader(io.BytesIO()), out, Path("worker.log"))
    gpu = GpuThatRunsOut(failures)
    monkeypatch.setattr(pipeline, "generate_mesh", gpu.generate_mesh)  # the fallback around it is real
    try:
        loaded = SimpleNamespace(device="cuda")
        return server.generate("oom", GenerateSettings(resolution=512), b"", loaded, pipeline), gpu, out.getvalue()
    except Exception as exc:  # noqa: BLE001
        return exc, gpu, out.getvalue()


def test_cuda_out_of_memory_retries_once_with_smaller_chunks(monkeypatch):
    result, gpu, sent = oom_job(failures=1, monkeypatch=monkeypatch)
    assert result == "mesh"
    assert gpu.chunk_sizes[0] is None and 0 < gpu.chunk_sizes[1] < 1 << 18
    assert b"retrying with smaller chunks" in sent


def test_cuda_out_of_memory_twice_names_the_setting_to_lower(monkeypatch):
    from backend.bridge.errors import OutOfMemoryError

    error, gpu, _ = oom_job(failures=2, monkeypatch=monkeypatch)
    assert len(gpu.chunk_sizes) == 2
    assert isinstance(error, OutOfMemoryError) and "lower the resolution setting" in error.message
    assert "512" in error.message


# ---------------------------------------------------------------- hardening: types, sizes, faults


def test_settings_of_the_wrong_type_are_refused_by_name(raw_worker, tiny_model_dir, flamingo_path):
    job = {"model": str(tiny_model_dir), "device": "cpu", "image_path": str(flamingo_path)}
    for number, (name, value) in enumerate([("resolution", "32"), ("threshold", "abc"), ("remove_background", "no"),
                                            ("foreground_ratio", True), ("max_faces", 2), ("texture_size", 50),
                                            ("smooth_iterations", -1)]):
        raw_worker.send("generate", {**job, "job_id": f"t{number}", "settings": {name: value}})
        error = raw_worker.next("error")
        assert (error.get("job_id"), error.get("code")) == (f"t{number}", "bad_request")
        assert name in error.get("message") and "must be" in error.get("message")


def test_an_infinite_threshold_is_refused_at_once(raw_worker, tiny_model_dir, flamingo_path):
    header = (b'{"type":"generate","job_id":"inf","settings":{"threshold":1e999},"device":"cpu","model":"'
              + str(tiny_model_dir).encode() + b'","image_path":"' + str(flamingo_path).encode() + b'"}')
    started = time.monotonic()
    raw_worker.send_raw(wire.PREFIX.pack(wire.MAGIC, len(header), 0) + header)
    error = raw_worker.next("error", timeout=10)
    assert error.get("job_id") == "inf" and "finite" in error.get("message")
    assert time.monotonic() - started < 5


def test_a_frame_claiming_gigabytes_costs_nothing_until_they_arrive():
    import tracemalloc

    header = b'{"type":"generate","job_id":"big","buffers":[{"name":"image_bytes","dtype":"uint8","shape":[2147483648],"nbytes":2147483648}]}'
    stream = io.BufferedReader(io.BytesIO(wire.PREFIX.pack(wire.MAGIC, len(header), 1 << 31) + header + b"x" * 1000))
    tracemalloc.start()
    try:
        with pytest.raises(wire.StreamClosed):
            wire.FrameReader(stream).read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 3 * wire.READ_CHUNK_BYTES  # a chunk and its zeroed growth, not 2 GiB


def test_the_job_queue_is_bounded(raw_worker, tiny_model_dir, flamingo_path):
    from backend.worker.server import MAX_QUEUED_JOBS

    job = {"settings": SLOW.to_dict(), "model": str(tiny_model_dir), "device": "cpu", "image_path": str(flamingo_path)}
    for number in range(MAX_QUEUED_JOBS + 3):
        raw_worker.send("generate", {**job, "job_id": f"q{number}"})
    error = raw_worker.next("error", timeout=30)
    assert "jobs waiting" in error.get("message")
    raw_worker.send("shutdown")


def test_empty_pixels_are_refused_when_submitted(client):
    with pytest.raises(ValueError, match="no pixels"):
        client.submit(SMALL, image_pixels=np.zeros((0, 0, 4), np.uint8))


def test_a_suspended_worker_fails_its_job_within_seconds(tiny_model_dir, tmp_path, flamingo_path):
    with make_client(tiny_model_dir, tmp_path) as client:
        job_id = client.submit(SLOW, image_path=flamingo_path)
        events_until(client, job_id, {"progress"}, timeout=120)
        os.kill(client.pid, signal.SIGSTOP)
        started = time.monotonic()
        end = events_until(client, job_id, {"result", "error", "cancelled"}, timeout=30)[-1]
        assert end.kind == "error" and "suspended" in end.message
        assert time.monotonic() - started < client.suspended_grace + 5
        assert client.run(SMALL, image_path=flamingo_path).faces.size  # a fresh worker serves the next job


def test_an_unwritable_log_folder_is_named(tiny_model_dir, tmp_path, flamingo_path):
    (tmp_path / "file").write_text("x")
    with WorkerClient(sys.executable, str(tiny_model_dir), "cpu", log_dir=str(tmp_path / "file" / "logs")) as client:
        with pytest.raises(WorkerFailed, match="cannot write its log"):
            client.run(SMALL, image_path=flamingo_path, timeout=60)


def test_the_log_is_never_written_through_a_link(tiny_model_dir, tmp_path, flamingo_path):
    victim = tmp_path / "someone-elses.txt"
    victim.write_text("theirs\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "worker.log").symlink_to(victim)
    with WorkerClient(sys.executable, str(tiny_model_dir), "cpu", log_dir=str(tmp_path / "logs")) as client:
        with pytest.raises(WorkerFailed, match="link"):
            client.run(SMALL, image_path=flamingo_path, timeout=60)
    assert victim.read_text() == "theirs\n"


def test_the_default_log_folder_is_private_to_the_user():
    from backend.bridge.worker_process import default_log_dir, log_folder_problem

    folder = default_log_dir()
    assert log_folder_problem(folder) is None
    assert str(os.getuid()) in folder.parent.name
    assert folder.parent.stat().st_mode & 0o077 == 0


def test_an_idle_model_on_a_gpu_is_unloaded_and_one_on_the_cpu_kept():
    from types import SimpleNamespace

    from backend.bridge import protocol
    from backend.worker.server import WorkerServer

    for device, unloaded in (("cuda", True), ("cpu", False)):
        out = io.BytesIO()
        server = WorkerServer(io.BufferedReader(io.BytesIO()), out, Path("worker.log"), idle_unload=300)
        server._loaded = SimpleNamespace(device=device)
        server.unload_if_on_gpu()
        assert (server._loaded is None) == unloaded
        sent = out.getvalue()
        if unloaded:
            event = protocol.parse(wire.FrameReader(io.BufferedReader(io.BytesIO(sent))).read(), protocol.EVENTS)
            assert isinstance(event, protocol.ModelUnloaded) and "idle" in event.reason
        else:
            assert sent == b""


def test_the_client_knows_what_model_the_worker_holds(tiny_model_dir, tmp_path, flamingo_path):
    with make_client(tiny_model_dir, tmp_path) as client:
        assert client.model_state is None
        client.run(SMALL, image_path=flamingo_path)
        state = client.model_state
        assert state["device"] == "cpu" and state["weights_bytes"] > 100_000
    assert client.model_state is None  # closed: nothing is held
