"""The model process and its client, with real worker processes and the tiny checkpoint.

Each worker start imports torch (~2-3 s on 2 cores), so tests share workers where the
behaviour under test allows it.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from worker_helpers import SLOW, SMALL, assert_same_mesh, events_until, make_client, process_gone, shared_client  # noqa: F401 - the fixture

from backend.bridge.client import WorkerClient
from backend.bridge.errors import BackendError, InputImageError, WorkerFailed, WorkerTimeout
from backend.bridge.settings import GenerateSettings
from backend.bridge.worker_process import EXTENSION_ROOT
from backend.worker.server import NOISE_ENV


@pytest.fixture(scope="module")
def in_process(tiny_model_dir, flamingo_path):
    """What backend.pipeline computes in this process for the flamingo, per resolution."""
    from backend.pipeline import generate_mesh, load_model

    loaded = load_model(tiny_model_dir, "cpu")
    return {r: generate_mesh(loaded, flamingo_path, GenerateSettings(resolution=r)) for r in (32, 64)}


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
