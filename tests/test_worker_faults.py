"""The model process under faults: frames a misbehaving client sends, CUDA running out of
memory (simulated), wrong types and sizes, a suspended process, log folders, idle
unloading - with real worker processes and the tiny checkpoint."""

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from worker_helpers import SLOW, SMALL, RawWorker, events_until, frame_level_worker, make_client, shared_client  # noqa: F401 - fixtures

from backend.bridge import wire
from backend.bridge.client import WorkerClient
from backend.bridge.errors import WorkerFailed
from backend.bridge.settings import GenerateSettings

# ---------------------------------------------------------------- the worker at the frame level


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
